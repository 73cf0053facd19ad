# Sourced by scripts/demo.sh and scripts/test.sh: the project's virtual environment.
#
# Debian 12+ and Raspberry Pi OS Bookworm/Trixie mark the system Python "externally managed"
# (PEP 668): `pip install` into it is refused. Both scripts therefore install into `.venv` in the
# repository (ignored by git), made with --system-site-packages so that packages from apt stay
# visible (python3-picamera2 and libcamera on a Pi; whatever the base Python already has elsewhere,
# which pip then does not download again). A second run reuses it; pip runs again only when
# setup.cfg, pyproject.toml or the requested extras changed.
#
#   apt_install SCRIPT WHY PKG...      install missing Debian packages, saying in one line what and why
#   venv_package                the python3.X-venv package .venv still needs, if any
#   project_venv SCRIPT EXTRAS [PIP_ARGS...]   create/refresh .venv with `pip install -e .[EXTRAS]`,
#                               then put .venv/bin first on PATH (VENV_PY names its python)

VENV="${FACE_EDGE_VENV:-$PWD/.venv}"

# apt_install SCRIPT WHY PKG...: install the packages that are missing (nothing when all are there).
apt_install() {
  local script="$1" why="$2"; shift 2
  local missing=() pkg
  command -v apt-get >/dev/null 2>&1 || return 0
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "$script: installing with apt: ${missing[*]} ($why)"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# glib_package: GLib's Debian package name on this release (renamed for the 64-bit time_t move in Trixie).
glib_package() {
  case "$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")" in
    bullseye|bookworm|jammy|focal) echo libglib2.0-0 ;;
    *) echo libglib2.0-0t64 ;;
  esac
}

# venv_package: the Debian package the base Python needs to make .venv (python3.X-venv: Debian's
# python3 has no ensurepip without it), or nothing when .venv exists or venv already works.
venv_package() {
  local base="${FACE_EDGE_PYTHON:-python3}"
  [ ! -x "$VENV/bin/python" ] || return 0
  "$base" -c 'import ensurepip, venv' >/dev/null 2>&1 && return 0
  "$base" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}-venv")'
}

# project_venv SCRIPT EXTRAS [PIP_ARGS...]: make or reuse .venv and install this checkout into it.
project_venv() {
  local script="$1" extras="$2"; shift 2
  local base="${FACE_EDGE_PYTHON:-python3}"
  if [ ! -x "$VENV/bin/python" ]; then
    [ -z "$(venv_package)" ] || apt_install "$script" "for the project's .venv" "$(venv_package)"
    echo "$script: creating the project's virtual environment $VENV (Debian's and Raspberry Pi OS's system Python refuses pip installs: PEP 668)"
    "$base" -m venv --system-site-packages "$VENV"
  fi
  VENV_PY="$VENV/bin/python"
  export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
  local pin=()
  # On a Pi, apt's picamera2 and simplejpeg are built against apt's numpy: the edge app keeps that
  # numpy (a newer one in .venv would shadow it). The trainer needs a newer numpy and is not pinned.
  if [[ "$extras" != *trainer* ]] && sysnp="$("$base" -c 'import picamera2, numpy; print(numpy.__version__)' 2>/dev/null)"; then
    echo "numpy==$sysnp" > "$VENV/apt-numpy.txt"
    pin=(-c "$VENV/apt-numpy.txt")
  fi
  # Install again only when what pip would resolve changed (the code itself is an editable install).
  local stamp
  stamp="$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)-$extras-$*-$PWD"
  if [ "$(cat "$VENV/.face-edge-$extras" 2>/dev/null)" != "$stamp" ]; then
    echo "$script: installing face-edge[$extras] into $VENV (pip, editable)"
    "$VENV_PY" -m pip install -q --disable-pip-version-check "${pin[@]}" "$@" -e ".[$extras]"
    echo "$stamp" > "$VENV/.face-edge-$extras"
  fi
}
