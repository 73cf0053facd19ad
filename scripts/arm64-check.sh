#!/usr/bin/env bash
# The arm64 check: does a Raspberry Pi OS 64-bit user's install pass? Run it whenever a change
# touches systemd/install.sh, setup.cfg, edge/runtime.py, edge/models.py or a bundle in models/.
#
#   sudo bash scripts/arm64-check.sh                 # Debian bookworm (Python 3.11) and trixie (3.13)
#   sudo bash scripts/arm64-check.sh trixie          # one release
#
# For each release, under qemu user emulation (Debian's debootstrap, qemu-user-static and
# binfmt-support, installed with apt when missing):
#   1. a minimal arm64 Debian root file system (debootstrap --variant=minbase + systemd and
#      ca-certificates, like Raspberry Pi OS Lite without the Pi's own packages), built once and
#      cached outside the repository; every run starts from a fresh copy of it;
#   2. this checkout copied in (git's tracked and untracked, not ignored, files) and
#      `systemd/install.sh --no-start` run in it: apt packages, user, folders, venv, pip install
#      of face-edge with ai_edge_litert's aarch64 wheel, unit enabled; only starting it is left out
#      (no systemd runs in a chroot);
#   3. `face-edge check` and `face-edge run --source demo --no-display --max-frames 30 --record`
#      on the bundles install.sh put in /var/lib/face-edge/models (every folder of models/);
#   3b. `face-edge enroll` from three frames of the demo clip, then `face-edge recognize` on a later frame
#      (photo detection with its SSD face check, landmarks, embedding, gallery): the face must be named;
#   4. every installed bundle's golden faces replayed as `face-edge install-bundle` does
#      (scripts/golden_replay.py -> edge.push.compare_golden), once per emulated CPU: cortex-a76
#      (Raspberry Pi 5: NEON with dot product) and cortex-a72 (Pi 4: NEON without it), each with
#      that Pi's /proc/cpuinfo shown to the guest, so XNNPACK starts and picks its kernels as there.
# It prints a table (release, Python, runtime, CPU, each bundle's golden verdict, frames, wall time)
# and exits 1 when anything failed.
#
# Options: --cache DIR  cache folder (default $FACE_EDGE_ARM64_CACHE, else /var/cache/face-edge-arm64):
#                       base root file systems, apt's .deb files and pip's cache
#          --rebuild    build the base root file systems again
#          --keep       keep each release's work root (DIR/RELEASE/root) to look inside afterwards
#          --cpus "cortex-a76 cortex-a72"  the emulated CPUs the golden faces are replayed on
# Environment: FACE_EDGE_ARM64_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FACE_EDGE_ARM64_CACHE:-/var/cache/face-edge-arm64}"
MIRROR="${FACE_EDGE_ARM64_MIRROR:-http://deb.debian.org/debian}"
RELEASES=()
REBUILD=0
KEEP=0
CPUS="cortex-a76 cortex-a72"

die() { echo "arm64-check: error: $*" >&2; exit 2; }
say() { echo "arm64-check: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE="${2:?--cache needs a folder}"; shift 2 ;;
    --rebuild) REBUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    --cpus) CPUS="${2:?--cpus needs a list of qemu CPU names}"; shift 2 ;;
    bookworm|trixie) RELEASES+=("$1"); shift ;;
    -h|--help) sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (releases: bookworm, trixie; see --help)" ;;
  esac
done
[ "${#RELEASES[@]}" -gt 0 ] || RELEASES=(bookworm trixie)
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it): sudo bash $0 $*"
[ "$(uname -m)" = x86_64 ] || die "needs an x86_64 host: it emulates arm64 (on a Pi, run systemd/install.sh itself)"
case "$CACHE" in "$SRC"|"$SRC"/*) die "--cache must be outside the repository ($SRC)" ;; esac
command -v git >/dev/null || die "git is needed to copy the checkout"

# --- host tools -------------------------------------------------------------------------------
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
if [ "${#need[@]}" -gt 0 ]; then
  say "installing with apt: ${need[*]} (to build and run an arm64 Debian under emulation)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null || \
  die "binfmt for qemu-aarch64 is not enabled (update-binfmts --enable qemu-aarch64 failed)"
# The F flag makes the kernel keep the interpreter open, so it runs inside the chroot too.
grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || \
  die "binfmt qemu-aarch64 lacks the F (fix binary) flag: reinstall qemu-user-static"
mkdir -p "$CACHE/pip"

# --- one release --------------------------------------------------------------------------------
build_base() {  # build_base RELEASE: the cached minimal root file system
  local rel="$1" base="$CACHE/$1/base"
  if [ "$REBUILD" = 1 ]; then rm -rf -- "${base:?}" "$base.tmp"; fi
  [ -f "$base/.face-edge-base" ] && return 0
  say "$rel: building a minimal arm64 root file system in $base (debootstrap; once, then cached)"
  rm -rf -- "${base:?}.tmp"
  mkdir -p "$CACHE/$rel/debs"
  debootstrap --arch=arm64 --variant=minbase --include=systemd,ca-certificates \
    --cache-dir="$CACHE/$rel/debs" "$rel" "$base.tmp" "$MIRROR" > "$CACHE/$rel/debootstrap.log" 2>&1 \
    || die "$rel: debootstrap failed (log: $CACHE/$rel/debootstrap.log)"
  echo "deb $MIRROR $rel main" > "$base.tmp/etc/apt/sources.list"
  date -u +%FT%TZ > "$base.tmp/.face-edge-base"
  rm -rf -- "$base"
  mv "$base.tmp" "$base"
}

# Copy the host's pip settings and CA bundles into the root, so pip there reaches what pip here does.
copy_host_settings() {
  local root="$1" f
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  for f in /etc/pip.conf /etc/xdg/pip "${XDG_CONFIG_HOME:-${HOME:-/root}/.config}/pip" /etc/ssl/certs/ca-certificates.crt \
           "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" "${PIP_CONSTRAINT:-}"; do
    [ -n "$f" ] && [ -e "$f" ] || continue
    case "$f" in "${HOME:-/root}"/*) dest="$root/root/${f#"${HOME:-/root}"/}" ;; *) dest="$root$f" ;; esac
    mkdir -p "$(dirname "$dest")"
    cp -rL "$f" "$(dirname "$dest")/"
  done
}

# cpuinfo_for CPU: a Raspberry Pi's /proc/cpuinfo for the emulated CPU, one entry per host CPU.
# qemu-user shows the guest the host's x86 /proc/cpuinfo: cpuinfo (XNNPACK's CPU detection) crashes
# on it, and without /sys it gives up and LiteRT runs without XNNPACK, on TFLite's built-in kernels
# (that is what the first arm64 try measured). The features XNNPACK picks kernels by come from the
# emulated CPU's HWCAPs (QEMU_CPU); this file gives cpuinfo the core list and the microarchitecture.
cpuinfo_for() {
  local features part variant revision model i
  case "$1" in
    cortex-a76) features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
                part=0xd0b; variant=0x4; revision=1; model="Raspberry Pi 5 Model B Rev 1.0" ;;
    cortex-a72) features="fp asimd evtstrm crc32 cpuid"
                part=0xd08; variant=0x0; revision=3; model="Raspberry Pi 4 Model B Rev 1.5" ;;
    *) die "no Raspberry Pi /proc/cpuinfo for --cpus $1 (cortex-a76: Pi 5, cortex-a72: Pi 4)" ;;
  esac
  for ((i = 0; i < $(nproc --all); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\n' "$i" "$features"
    printf 'CPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' "$variant" "$part" "$revision"
  done
  printf 'Model\t\t: %s\n' "$model"
}
for cpu in $CPUS; do cpuinfo_for "$cpu" >/dev/null; done  # refuse an unknown CPU before building anything

# The steps inside the emulated system (stdin of chroot's bash). Prints one JSON line at the end.
INNER='set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
cd /root/face-edge
mkdir -p /root/results
# as_cpu CPU: show the guest the /proc/cpuinfo of that Raspberry Pi CPU (see cpuinfo_for)
as_cpu() { umount /proc/cpuinfo 2>/dev/null || true; mount --bind "/root/cpuinfo-$1" /proc/cpuinfo; export QEMU_CPU="$1"; }
as_cpu cortex-a76
t0=$(date +%s.%N)
echo "== systemd/install.sh --no-start"
bash systemd/install.sh --no-start
t1=$(date +%s.%N)
cat > /tmp/check.yaml <<EOF
source: {uri: demo}
models: {dir: /var/lib/face-edge/models}
recognition: {gallery: /tmp/gallery.npz}
service: {control_socket: null, watchdog: false}
EOF
echo "== face-edge check"
check=0; face-edge check --config /tmp/check.yaml || check=$?
echo "== face-edge run --source demo --no-display --max-frames 30 --record /tmp/arm64-demo.mp4"
r0=$(date +%s.%N)
run=0; face-edge run --config /tmp/check.yaml --source demo --no-display --max-frames 30 --record /tmp/arm64-demo.mp4 || run=$?
r1=$(date +%s.%N)
echo "== face-edge enroll (3 frames of the demo clip) and face-edge recognize (a later frame)"
mkdir -p /tmp/demo-enroll
/opt/face-edge/venv/bin/python - <<"PY"
import cv2
clip = cv2.VideoCapture("edge/assets/demo.mp4")
for i in range(131):
    ok, frame = clip.read()
    if i in (0, 15, 30):
        cv2.imwrite(f"/tmp/demo-enroll/frame{i:03d}.jpg", frame)
cv2.imwrite("/tmp/demo-probe.jpg", frame)
PY
recognize=0
face-edge enroll astronaut --from /tmp/demo-enroll --config /tmp/check.yaml || recognize=$?
face-edge recognize /tmp/demo-probe.jpg --json --config /tmp/check.yaml > /tmp/recognize.json || recognize=$?
cat /tmp/recognize.json
for cpu in $CPUS; do
  echo "== golden faces on $cpu"
  as_cpu "$cpu"
  /opt/face-edge/venv/bin/python scripts/golden_replay.py --models /var/lib/face-edge/models \
    --outputs /root/results/golden-$cpu.npz --count-frames /tmp/arm64-demo.mp4 > /root/results/golden-$cpu.json || true
  cat /root/results/golden-$cpu.json
done
python3 - "$check" "$run" "$t0" "$t1" "$r0" "$r1" "$recognize" $CPUS <<EOF
import json, sys
check, run, t0, t1, r0, r1, recognize = sys.argv[1:8]
def load(cpu):
    try:
        return json.load(open(f"/root/results/golden-{cpu}.json"))
    except ValueError:
        return {"error": "the golden replay crashed (see the log)"}
per_cpu = {cpu: load(cpu) for cpu in sys.argv[8:]}
try:
    faces = json.load(open("/tmp/recognize.json"))["faces"]
except (OSError, ValueError, KeyError):
    faces = []
print("RESULT " + json.dumps({"check": int(check), "run": int(run), "install_s": float(t1) - float(t0),
                              "run_s": float(r1) - float(r0), "golden": per_cpu,
                              "recognize": {"exit": int(recognize), "names": [f.get("name") for f in faces],
                                            "distances": [f.get("distance") for f in faces]}}))
EOF
'

check_release() {  # check_release RELEASE: prints the RESULT line on stdout, the log on stderr
  local rel="$1" root="$CACHE/$1/root"
  build_base "$rel"
  if [ -d "$root" ]; then
    findmnt -R -n -o TARGET | grep -q "^$root/" && die "$root still has mounts: unmount them first"
    rm -rf -- "${root:?}"
  fi
  say "$rel: fresh copy of the base root file system"
  cp -a "$CACHE/$rel/base" "$root"
  copy_host_settings "$root"
  for cpu in $CPUS; do cpuinfo_for "$cpu" > "$root/root/cpuinfo-$cpu"; done
  mkdir -p "$root/root/face-edge" "$root/root/.cache/pip" "$CACHE/$rel/debs"
  git -C "$SRC" ls-files -z --cached --others --exclude-standard | \
    (cd "$SRC" && tar --null -T - -cf - 2>/dev/null) | tar -xf - -C "$root/root/face-edge"
  local env_args=(QEMU_CPU=cortex-a76 "CPUS=$CPUS")
  local var
  for var in $(compgen -e | grep -E '^(PIP_|https?_proxy$|HTTPS?_PROXY$|no_proxy$|NO_PROXY$)' || true); do
    env_args+=("$var=${!var}")
  done
  # Mounts live in a private mount namespace: they vanish with it, whatever happens.
  unshare --mount --propagation private -- bash -c '
    set -e
    root="$1" cache="$2" rel="$3"; shift 3
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --bind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/dev/shm"
    mount -t tmpfs tmpfs "$root/run"
    mount --bind "$cache/pip" "$root/root/.cache/pip"
    mount --bind "$cache/$rel/debs" "$root/var/cache/apt/archives"
    exec chroot "$root" /usr/bin/env -i "$@" /bin/bash -s' _ "$root" "$CACHE" "$rel" "${env_args[@]}" <<< "$INNER"
}

RESULTS=()
status=0
for rel in "${RELEASES[@]}"; do
  start=$(date +%s)
  log="$CACHE/$rel/check.log"
  mkdir -p "$CACHE/$rel"
  say "$rel: running (log: $log)"
  # In a subshell, with errexit (an `if` would switch it off): a failure ends this release's check only.
  set +e
  (set -e; check_release "$rel") > "$log" 2>&1
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then say "$rel: the check stopped (exit $rc): see $log"; status=1; fi
  wall=$(( $(date +%s) - start ))
  line="$(grep '^RESULT ' "$log" | tail -1 | cut -c8- || true)"
  [ -n "$line" ] || line="{}"
  RESULTS+=("$rel	$wall	$line")
  # golden replay outputs per emulated CPU, to compare with other machines' (scripts/golden_replay.py --compare)
  mkdir -p "$CACHE/$rel/results" && cp "$CACHE/$rel/root/root/results/"* "$CACHE/$rel/results/" 2>/dev/null || true
  [ "$KEEP" = 1 ] || rm -rf -- "${CACHE:?}/$rel/root"
done

printf '%s\n' "${RESULTS[@]}" | python3 "$SRC/scripts/arm64_table.py" || status=1
exit "$status"
