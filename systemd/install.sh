#!/usr/bin/env bash
# Install face-edge as a systemd service on Raspberry Pi OS Bookworm (Python 3.11) or Trixie
# (Python 3.13), 64-bit. Idempotent: a second run with the same options changes nothing.
#
#   sudo systemd/install.sh                 # install (or update), enable and start face-edge.service
#   sudo systemd/install.sh --display       # ... drawing on the attached screen (DISPLAY=:0)
#   sudo systemd/install.sh --network       # ... with network access, for mqtt: and web: in edge.yaml
#   sudo systemd/install.sh --uninstall     # stop and remove the service, venv and unit (keeps data)
#   sudo systemd/install.sh --uninstall --purge   # ... and /var/lib/face-edge, /etc/face-edge, the user
#
# Options: --root DIR   install into DIR instead of / (a staging or test root: nothing is started)
#          --python PY  the interpreter the venv is made from (default /usr/bin/python3, whose
#                       site-packages hold apt's python3-picamera2)
#          --no-start   enable but do not (re)start the service
#          --force      install on an OS other than Bookworm/Trixie
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT=/
PYTHON=/usr/bin/python3
DISPLAY_VARIANT=0
NETWORK_VARIANT=0
UNINSTALL=0
PURGE=0
START=1
FORCE=0

PREFIX=/opt/face-edge
VENV=$PREFIX/venv
STATE=/var/lib/face-edge
ETC=/etc/face-edge
UNIT_DIR=/etc/systemd/system
UNIT=face-edge.service
SERVICE_USER=face-edge
AUTOSTART=/etc/xdg/autostart/face-edge-xhost.desktop

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: error: $*" >&2; exit 1; }
CHANGES=0
changed() { CHANGES=$((CHANGES + 1)); echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="${2:?--root needs a folder}"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; shift ;;
    --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
    --display) DISPLAY_VARIANT=1; shift ;;
    --network) NETWORK_VARIANT=1; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    --no-start) START=0; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0 $*"
ROOT="$(cd "$ROOT" 2>/dev/null && pwd)" || die "--root folder does not exist"
R="${ROOT%/}"   # prefix for every path we touch: empty when installing into /

ROOT_ARGS=()
[ "$ROOT" = / ] || ROOT_ARGS=(--root "$ROOT")

# --- helpers ----------------------------------------------------------------------------------
user_exists() { grep -q "^$1:" "$R/etc/passwd" 2>/dev/null; }
uid_of() { awk -F: -v u="$1" '$1 == u { print $3 }' "$R/etc/passwd"; }
gid_of() { awk -F: -v g="$1" '$1 == g { print $3 }' "$R/etc/group"; }
in_group() { awk -F: -v g="$1" -v u="$2" '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) f = 1 } END { exit !f }' "$R/etc/group"; }

# ensure_dir PATH MODE OWNER GROUP: create or fix, reporting only real changes.
ensure_dir() {
  local path="$R$1" mode="$2" uid gid
  uid="$(uid_of "$3")"; gid="$(gid_of "$4")"
  if [ ! -d "$path" ]; then
    install -d -m "$mode" -o "$uid" -g "$gid" "$path"; changed "created $1"
  elif [ "$(stat -c '%a %u %g' "$path")" != "${mode#0} $uid $gid" ]; then
    chmod "$mode" "$path"; chown "$uid:$gid" "$path"; changed "fixed owner/mode of $1"
  fi
}

# ensure_file SRC DEST MODE: copy when missing or different.
ensure_file() {
  local src="$1" dest="$R$2" mode="$3"
  if [ ! -f "$dest" ] || ! cmp -s "$src" "$dest"; then
    install -D -m "$mode" "$src" "$dest"; changed "wrote $2"
  elif [ "$(stat -c '%a' "$dest")" != "$mode" ]; then
    chmod "$mode" "$dest"; changed "fixed mode of $2"
  fi
}

remove() {  # remove PATH... (files, symlinks or folders), reporting what existed
  local p
  for p in "$@"; do
    if [ -e "$R$p" ] || [ -L "$R$p" ]; then rm -rf -- "${R:?}$p"; changed "removed $p"; fi
  done
}

systemd_running() { [ "$ROOT" = / ] && [ -d /run/systemd/system ]; }

# --- OS check ---------------------------------------------------------------------------------
CODENAME=""
if [ -r "$R/etc/os-release" ]; then CODENAME="$(. "$R/etc/os-release"; echo "${VERSION_CODENAME:-}")"; fi
case "$CODENAME" in
  bookworm|trixie) ;;
  *) [ "$FORCE" = 1 ] || [ "$UNINSTALL" = 1 ] || \
       die "this installer supports Raspberry Pi OS Bookworm and Trixie (found '${CODENAME:-unknown}'); --force to try anyway" ;;
esac
if [ "$ROOT" = / ] && [ "$(uname -m)" != aarch64 ]; then
  echo "install.sh: warning: $(uname -m) is not 64-bit ARM; face-edge is built for the 64-bit Pi OS" >&2
fi

# --- uninstall --------------------------------------------------------------------------------
if [ "$UNINSTALL" = 1 ]; then
  if systemd_running; then
    if systemctl is-active --quiet "$UNIT"; then systemctl stop "$UNIT"; changed "stopped $UNIT"; fi
  fi
  if [ -e "$R$UNIT_DIR/$UNIT" ] && systemctl "${ROOT_ARGS[@]}" is-enabled --quiet "$UNIT" 2>/dev/null; then
    systemctl "${ROOT_ARGS[@]}" disable --quiet "$UNIT"; changed "disabled $UNIT"
  fi
  remove "$UNIT_DIR/$UNIT" "$UNIT_DIR/$UNIT.d" "$AUTOSTART" /usr/local/bin/face-edge "$PREFIX"
  if systemd_running && [ "$CHANGES" -gt 0 ]; then systemctl daemon-reload; fi
  if [ "$PURGE" = 1 ]; then
    remove "$STATE" "$ETC"
    if user_exists "$SERVICE_USER"; then userdel "${ROOT_ARGS[@]}" "$SERVICE_USER"; changed "deleted user $SERVICE_USER"; fi
    if grep -q "^$SERVICE_USER:" "$R/etc/group" 2>/dev/null; then
      groupdel "${ROOT_ARGS[@]}" "$SERVICE_USER"; changed "deleted group $SERVICE_USER"
    fi
  fi
  [ "$CHANGES" -gt 0 ] || echo "install.sh: face-edge is not installed; nothing to change"
  exit 0
fi

# --- apt packages -----------------------------------------------------------------------------
# picamera2 and libcamera come from apt (the pip picamera2 needs a compiler and libcap-dev and
# must match the system libcamera); OpenCV and LiteRT come from pip wheels into the venv, which
# sees apt's packages through --system-site-packages. OpenCV's wheel loads libGL and GLib (absent
# from Raspberry Pi OS Lite). rsync receives `face-edge push`.
PACKAGES=(python3-venv python3-numpy rsync libgl1)
case "$CODENAME" in
  trixie) PACKAGES+=(libglib2.0-0t64) ;;
  *) PACKAGES+=(libglib2.0-0) ;;
esac
# Only Raspberry Pi OS's own apt source has these (plain Debian arm64 has no python3-picamera2):
# without them everything but the Pi camera source works.
CAMERA_PACKAGES=(python3-picamera2 python3-libcamera)
installed() { dpkg-query "${ROOT_ARGS[@]}" -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
MISSING=()
for pkg in "${PACKAGES[@]}" "${CAMERA_PACKAGES[@]}"; do installed "$pkg" || MISSING+=("$pkg"); done
if [ "${#MISSING[@]}" -gt 0 ]; then
  APT_ROOT=()
  [ "$ROOT" = / ] || APT_ROOT=(-o "RootDir=$ROOT")
  apt-get "${APT_ROOT[@]}" update -qq
  INSTALL=()
  UNAVAILABLE=()
  for pkg in "${MISSING[@]}"; do
    if [[ " ${CAMERA_PACKAGES[*]} " == *" $pkg "* ]] && ! apt-cache "${APT_ROOT[@]}" show "$pkg" >/dev/null 2>&1; then
      UNAVAILABLE+=("$pkg")
    else
      INSTALL+=("$pkg")
    fi
  done
  if [ "${#UNAVAILABLE[@]}" -gt 0 ]; then
    echo "install.sh: warning: ${UNAVAILABLE[*]} not in this system's apt sources (not Raspberry Pi OS?): the Pi camera source (picamera) will not work; USB cameras, files and streams do" >&2
  fi
  if [ "${#INSTALL[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get "${APT_ROOT[@]}" install -y -qq --no-install-recommends "${INSTALL[@]}"
    changed "installed apt packages: ${INSTALL[*]}"
  fi
fi

# --- user and folders -------------------------------------------------------------------------
if ! user_exists "$SERVICE_USER"; then
  useradd "${ROOT_ARGS[@]}" --system --user-group --home-dir "$STATE" --no-create-home \
    --shell /usr/sbin/nologin --comment "face-edge service" "$SERVICE_USER"
  changed "created system user $SERVICE_USER"
fi
for group in video; do
  if grep -q "^$group:" "$R/etc/group" && ! in_group "$group" "$SERVICE_USER"; then
    usermod "${ROOT_ARGS[@]}" -aG "$group" "$SERVICE_USER"; changed "added $SERVICE_USER to group $group"
  fi
done
# The admin who ran sudo may push models (install-bundle writes the models folder and talks to
# the service's control socket, both owned by group face-edge).
ADMIN="${SUDO_USER:-}"
if [ -n "$ADMIN" ] && [ "$ADMIN" != root ] && user_exists "$ADMIN" && ! in_group "$SERVICE_USER" "$ADMIN"; then
  usermod "${ROOT_ARGS[@]}" -aG "$SERVICE_USER" "$ADMIN"; changed "added $ADMIN to group $SERVICE_USER (may push models)"
fi

ensure_dir "$STATE" 2770 "$SERVICE_USER" "$SERVICE_USER"
for sub in models staging gallery; do ensure_dir "$STATE/$sub" 2770 "$SERVICE_USER" "$SERVICE_USER"; done
ensure_dir "$ETC" 0750 root "$SERVICE_USER"
if [ ! -f "$R$ETC/edge.yaml" ]; then   # never overwrite the user's edits
  install -m 0640 -o 0 -g "$(gid_of "$SERVICE_USER")" /dev/stdin "$R$ETC/edge.yaml" <<EOF
# face-edge service config (all keys: README.md, section configuration). Written by install.sh once.
source:
  uri: picamera            # picamera | 0 (USB /dev/video0) | clip.mp4 | folder/
models:
  dir: $STATE/models       # bundles installed here by \`face-edge push\`
recognition:
  gallery: $STATE/gallery/gallery.npz
display:
  window: true             # drawn only when DISPLAY is set (install.sh --display)
service:
  control_socket: /run/face-edge/control.sock   # install-bundle asks for hot reloads here
  watchdog: true
EOF
  changed "wrote $ETC/edge.yaml"
fi

# Shipped bundles: copied once; later versions arrive with `face-edge push` and are kept there.
if [ -d "$SRC/models" ]; then
  for bundle in "$SRC"/models/*/; do
    [ -f "$bundle/manifest.yaml" ] || continue
    name="$(basename "$bundle")"
    dest="$R$STATE/models/$name"
    if [ ! -e "$dest" ] && [ ! -L "$dest" ]; then
      cp -r "$bundle" "$dest"
      chown -R "$(uid_of "$SERVICE_USER"):$(gid_of "$SERVICE_USER")" "$dest"
      chmod -R g+rwX,o-rwx "$dest"
      changed "installed shipped bundle $name"
    fi
  done
fi

# --- venv and the face-edge package -----------------------------------------------------------
if [ ! -x "$R$VENV/bin/python" ]; then
  "$PYTHON" -m venv --system-site-packages "$R$VENV"
  changed "created venv $VENV (with system site-packages, for apt's picamera2)"
fi
# A stamp of the source: pip runs only when the code changed since the last install.
STAMP="$(cd "$SRC" && find edge trainer converters setup.cfg pyproject.toml -type f \
          ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 2>/dev/null | LC_ALL=C sort -z | \
          xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$R$PREFIX/source.sha256" 2>/dev/null)" != "$STAMP" ]; then
  CONSTRAINTS="$(mktemp)"
  trap 'rm -f "$CONSTRAINTS"' EXIT
  # Keep apt's numpy: picamera2, simplejpeg and libcamera's bindings are built against it, and a
  # newer numpy in the venv would shadow it (Bookworm ships numpy 1.24; pip then picks the newest
  # OpenCV and LiteRT wheels that still support it).
  if sysnp="$("$R$VENV/bin/python" -c 'import numpy; print(numpy.__version__)' 2>/dev/null)"; then
    echo "numpy==$sysnp" > "$CONSTRAINTS"
  fi
  # pip builds face-edge in an isolated environment with the build backend pyproject.toml names
  # (setuptools from PyPI, cached by pip): nothing is needed from the base Python (apt's setuptools
  # 66 on Bookworm cannot build a wheel without the separate `wheel` package).
  # The pi extra (picamera2) only where apt provides it: from PyPI it would compile python-prctl.
  EXTRAS=edge,mqtt,web
  if "$R$VENV/bin/python" -c 'import picamera2' >/dev/null 2>&1; then EXTRAS=$EXTRAS,pi; fi
  "$R$VENV/bin/python" -m pip install --disable-pip-version-check -q \
    -c "$CONSTRAINTS" "$SRC[$EXTRAS]"
  echo "$STAMP" > "$R$PREFIX/source.sha256"
  changed "installed face-edge[$EXTRAS] from $SRC into $VENV"
fi
if [ "$(readlink "$R/usr/local/bin/face-edge" 2>/dev/null)" != "$VENV/bin/face-edge" ]; then
  mkdir -p "$R/usr/local/bin"
  ln -sfn "$VENV/bin/face-edge" "$R/usr/local/bin/face-edge"
  changed "linked /usr/local/bin/face-edge"
fi

# --- systemd unit -----------------------------------------------------------------------------
UNIT_CHANGES_BEFORE=$CHANGES
ensure_file "$SRC/systemd/$UNIT" "$UNIT_DIR/$UNIT" 644
if [ "$DISPLAY_VARIANT" = 1 ]; then
  ensure_file "$SRC/systemd/$UNIT.d/display.conf" "$UNIT_DIR/$UNIT.d/display.conf" 644
  XHOST_ENTRY="$(mktemp)"
  printf '%s\n' '[Desktop Entry]' 'Type=Application' 'Name=face-edge display access' \
    'Comment=Lets the face-edge service draw on this screen' \
    'Exec=xhost +SI:localuser:face-edge' 'NoDisplay=true' > "$XHOST_ENTRY"
  ensure_file "$XHOST_ENTRY" "$AUTOSTART" 644
  rm -f "$XHOST_ENTRY"
else
  remove "$UNIT_DIR/$UNIT.d/display.conf" "$AUTOSTART"
fi
if [ "$NETWORK_VARIANT" = 1 ]; then
  ensure_file "$SRC/systemd/$UNIT.d/network.conf" "$UNIT_DIR/$UNIT.d/network.conf" 644
else
  remove "$UNIT_DIR/$UNIT.d/network.conf"
fi
if [ -d "$R$UNIT_DIR/$UNIT.d" ] && [ -z "$(ls -A "$R$UNIT_DIR/$UNIT.d")" ]; then
  rmdir "$R$UNIT_DIR/$UNIT.d"; changed "removed $UNIT_DIR/$UNIT.d"
fi
UNIT_CHANGED=$((CHANGES - UNIT_CHANGES_BEFORE))

if ! systemctl "${ROOT_ARGS[@]}" is-enabled --quiet "$UNIT" 2>/dev/null; then
  systemctl "${ROOT_ARGS[@]}" enable --quiet "$UNIT"; changed "enabled $UNIT"
fi
if [ "$START" = 1 ]; then
  if systemd_running; then
    [ "$UNIT_CHANGED" -eq 0 ] || systemctl daemon-reload
    if ! systemctl is-active --quiet "$UNIT"; then
      systemctl start "$UNIT"; changed "started $UNIT"
    elif [ "$CHANGES" -gt 0 ]; then
      systemctl restart "$UNIT"; echo "install.sh: restarted $UNIT"
    fi
  elif [ "$ROOT" != / ]; then
    echo "install.sh: installed into $ROOT: not starting anything"
  else
    echo "install.sh: systemd is not running here: start $UNIT after booting the Pi" >&2
  fi
fi
[ "$CHANGES" -gt 0 ] || echo "install.sh: face-edge is installed and up to date; nothing to change"
