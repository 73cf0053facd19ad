"""systemd/install.sh in a throwaway root: install, a second run changes nothing, --uninstall.

Real here: bash, the venv (from this machine's python, with --system-site-packages), pip
installing this repository with the [edge,pi] extras, useradd/usermod/userdel/groupdel
--root, dpkg-query --root, systemctl --root enable/disable. Mocked, because it would install
packages into this machine: apt-get (a PATH shim that records its calls and writes the
"installed" packages into the throwaway root's dpkg status file, which the real dpkg-query reads)
and apt-cache (a shim that says which packages the apt sources offer; the throwaway root has no
package lists). scripts/arm64-check.sh runs the same installer with the real apt in arm64 Debian.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

COPY_IGNORE = shutil.ignore_patterns(".git", "runs", "cache", ".cache", "out", "build", "dist", "*.egg-info",
                                     "__pycache__", "*.pyc", ".pytest_cache", "*.log", "*.npz", "*.npy", "*.mp4")

FAKE_APT = r"""#!/usr/bin/env bash
# Test double for apt-get (the only mocked tool): record the call; on install, mark the packages
# installed in the root's dpkg status file given by -o RootDir=.
echo "apt-get $*" >> "$FAKE_APT_LOG"
root=/
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o) case "$2" in RootDir=*) root="${2#RootDir=}";; esac; shift 2 ;;
    -*) shift ;;
    *) args+=("$1"); shift ;;
  esac
done
[ "$root" != / ] || { echo "fake apt-get refuses to touch the real system" >&2; exit 1; }
if [ "${args[0]:-}" = install ]; then
  for pkg in "${args[@]:1}"; do
    printf 'Package: %s\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n\n' "$pkg" \
      >> "$root/var/lib/dpkg/status"
  done
fi
"""

FAKE_APT_CACHE = r"""#!/usr/bin/env bash
# Test double for apt-cache show: every package is available except those in $FAKE_APT_UNAVAILABLE.
echo "apt-cache $*" >> "$FAKE_APT_LOG.cache"
pkg="${@: -1}"
case " ${FAKE_APT_UNAVAILABLE:-} " in *" $pkg "*) echo "N: Unable to locate package $pkg" >&2; exit 100 ;; esac
printf 'Package: %s\n' "$pkg"
"""


def _snapshot(root: Path) -> dict[str, tuple]:
    """Return {path: (mode, uid, gid, sha256 or link target)} for every entry under root."""
    snap = {}
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        st = path.lstat()
        if path.is_symlink():
            what = "->" + os.readlink(path)
        elif path.is_file():
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = "dir"
        snap[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, what, st.st_mtime_ns
                                             if path.is_file() else 0)
    return snap


@pytest.fixture
def fake_root(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("install.sh must run as root (it creates a user and root-owned folders)")
    for tool in ("useradd", "usermod", "userdel", "groupdel", "systemctl", "dpkg-query"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed here")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        if Path("/etc", name).exists():
            shutil.copy(Path("/etc", name), root / "etc" / name)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_CODENAME=bookworm\nVERSION_ID="12"\n')
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "apt-get").write_text(FAKE_APT)
    (shims / "apt-get").chmod(0o755)
    (shims / "apt-cache").write_text(FAKE_APT_CACHE)
    (shims / "apt-cache").chmod(0o755)
    log = tmp_path / "apt.log"
    env = dict(os.environ, PATH=f"{shims}:{os.environ['PATH']}", FAKE_APT_LOG=str(log), SUDO_USER="")
    env.pop("PIP_REQUIRE_VIRTUALENV", None)
    # A snapshot of the source: the installer hashes it, and others may edit the work tree meanwhile.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=COPY_IGNORE)
    env["FACE_EDGE_TEST_INSTALL"] = str(src / "systemd" / "install.sh")
    # a shipped bundle (a tiny real one), as models/<name>/ in the source
    from tests.helpers.tiny_bundles import build_attributes_bundle

    shutil.rmtree(src / "models", ignore_errors=True)
    build_attributes_bundle(src / "models" / "attributes")
    return root, env


def _run(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", env["FACE_EDGE_TEST_INSTALL"], "--root", str(root), "--python", sys.executable,
                           *args], env=env, capture_output=True, text=True, timeout=300)


def _passwd_entry(root: Path, user: str) -> list[str]:
    for line in (root / "etc/passwd").read_text().splitlines():
        if line.startswith(user + ":"):
            return line.split(":")
    return []


@pytest.mark.slow  # ~50 s: a real venv and a real pip install of this repository
def test_install_twice_then_uninstall(fake_root: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, env = fake_root
    first = _run(root, env, "--display")
    assert first.returncode == 0, first.stderr + first.stdout
    # apt: the missing packages, once
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert len(calls) == 2 and "update" in calls[0] and "install" in calls[1]
    assert "python3-picamera2" in calls[1] and "libglib2.0-0" in calls[1]
    # the user, in the video group, with no login shell
    entry = _passwd_entry(root, "face-edge")
    assert entry and entry[6] == "/usr/sbin/nologin" and entry[5] == "/var/lib/face-edge"
    video = next(ln for ln in (root / "etc/group").read_text().splitlines() if ln.startswith("video:"))
    assert "face-edge" in video.split(":")[3].split(",")
    uid = int(entry[2])
    for sub in ("", "/models", "/staging", "/gallery"):
        st = (root / f"var/lib/face-edge{sub}").stat()
        assert st.st_uid == uid and oct(st.st_mode & 0o7777) == "0o2770"
    shipped = root / "var/lib/face-edge/models/attributes"
    assert (shipped / "model.tflite").is_file() and shipped.stat().st_uid == uid
    from edge.bundle import load_bundle

    assert load_bundle(shipped).manifest.task == "attributes"
    cfg = (root / "etc/face-edge/edge.yaml").read_text()
    assert "control_socket: /run/face-edge/control.sock" in cfg
    # the config it writes is valid for this face-edge
    from edge.config import load_settings

    settings = load_settings(root / "etc/face-edge/edge.yaml")
    assert settings.models.dir == "/var/lib/face-edge/models"
    # the venv really runs this face-edge, with the system site-packages visible
    venv_py = root / "opt/face-edge/venv/bin/python"
    probe = subprocess.run([str(venv_py), "-c", "import edge.push, cv2, sys; print(sys.prefix)"],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert (root / "opt/face-edge/venv/bin/face-edge").exists()
    assert os.readlink(root / "usr/local/bin/face-edge") == "/opt/face-edge/venv/bin/face-edge"
    # unit, display drop-in, enabled
    assert (root / "etc/systemd/system/face-edge.service").read_bytes() == \
        (tmp_path / "src/systemd/face-edge.service").read_bytes()
    assert (root / "etc/systemd/system/face-edge.service.d/display.conf").is_file()
    assert (root / "etc/systemd/system/multi-user.target.wants/face-edge.service").is_symlink()
    assert "not starting anything" in first.stdout

    before = _snapshot(root)
    second = _run(root, env, "--display")
    assert second.returncode == 0, second.stderr
    assert "nothing to change" in second.stdout, second.stdout
    assert len((tmp_path / "apt.log").read_text().splitlines()) == 2, "apt ran again"
    assert _snapshot(root) == before

    # --network adds its drop-in beside; without --display that one goes; without either the folder goes
    net = _run(root, env, "--network")
    dropins = root / "etc/systemd/system/face-edge.service.d"
    assert net.returncode == 0 and sorted(p.name for p in dropins.iterdir()) == ["network.conf"]
    third = _run(root, env)
    assert third.returncode == 0 and not dropins.exists()

    gone = _run(root, env, "--uninstall")
    assert gone.returncode == 0, gone.stderr
    for path in ("etc/systemd/system/face-edge.service", "opt/face-edge", "usr/local/bin/face-edge",
                 "etc/systemd/system/multi-user.target.wants/face-edge.service"):
        assert not (root / path).exists() and not (root / path).is_symlink(), path
    assert (root / "var/lib/face-edge").is_dir() and (root / "etc/face-edge/edge.yaml").is_file()
    again = _run(root, env, "--uninstall")
    assert again.returncode == 0 and "nothing to change" in again.stdout
    purge = _run(root, env, "--uninstall", "--purge")
    assert purge.returncode == 0, purge.stderr
    assert not (root / "var/lib/face-edge").exists() and not _passwd_entry(root, "face-edge")


def test_refuses_unsupported_os(fake_root: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, env = fake_root
    (root / "etc/os-release").write_text("ID=debian\nVERSION_CODENAME=bullseye\n")
    done = _run(root, env)
    assert done.returncode != 0
    assert "Bookworm and Trixie" in done.stderr and "bullseye" in done.stderr
    assert not (tmp_path / "apt.log").exists()


def test_camera_packages_missing_from_apt_sources(fake_root: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """Plain Debian (no Raspberry Pi OS apt source): one warning, everything else installed."""
    root, env = fake_root
    env["FAKE_APT_UNAVAILABLE"] = "python3-picamera2 python3-libcamera"
    for name in ("python3-venv", "python3-numpy", "rsync", "libgl1", "libglib2.0-0"):  # installed
        with (root / "var/lib/dpkg/status").open("a") as fh:
            fh.write(f"Package: {name}\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n\n")
    done = _run(root, env, "--python", "/bin/false")  # stops where the venv would be made
    assert done.returncode != 0
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls == [f"apt-get -o RootDir={root} update -qq"], calls
    warnings = [ln for ln in done.stderr.splitlines() if "warning:" in ln]
    assert any("python3-picamera2 python3-libcamera not in this system's apt sources" in ln and "picamera" in ln
               for ln in warnings), done.stderr
