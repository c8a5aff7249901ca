#!/usr/bin/env bash
# Idempotent set-up of a development machine: .venv with pinned dependencies, the two ROS-wheel path quirks,
# Debian libusb for pyrealsense2, and the colcon build of the manipllm interfaces into install/.
# Each step is skipped when its inputs are unchanged (hash stamps in .venv/), so a second run takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check -q)
TORCH_VERSION="2.13.0"

log() { printf '[setup] %s\n' "$*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
stamp_ok() { [ -f "$VENV/.stamp-$1" ] && [ "$(cat "$VENV/.stamp-$1")" = "$2" ]; }
stamp_set() { echo "$2" >"$VENV/.stamp-$1"; }

# 1. Virtual environment (Python 3.11: the ROS 2 Kilted wheels are built for it).
if [ ! -x "$VPY" ]; then
  ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$ver" = "3.11" ] || { echo "manipllm needs Python 3.11 (ROS 2 Kilted wheels); found $ver at $PY" >&2; exit 1; }
  log "creating .venv"
  "$PY" -m venv "$VENV"
  "${PIP[@]}" install --upgrade pip wheel "setuptools<80"
fi

# 2. torch first, pinned, CPU build: an unpinned torch pulls GBs of CUDA packages.
if ! stamp_ok torch "$TORCH_VERSION"; then
  log "installing torch==$TORCH_VERSION"
  "${PIP[@]}" install "torch==$TORCH_VERSION"
  stamp_set torch "$TORCH_VERSION"
fi

# 3. Pinned dependencies + this package (editable, no deps: requirements.txt is the single list).
req_hash=$(hash_of requirements.txt requirements-core.txt setup.py pyproject.toml)
if ! stamp_ok req "$req_hash"; then
  log "installing requirements.txt"
  "${PIP[@]}" install -r requirements.txt "torch==$TORCH_VERSION"
  "${PIP[@]}" install --no-deps -e .
  stamp_set req "$req_hash"
fi

# 4. pyrealsense2 needs libusb-1.0 from Debian.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian libusb-1.0-0 (for pyrealsense2)"
    (apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq libusb-1.0-0 >/dev/null; })
  else
    log "WARNING: libusb-1.0-0 missing and not root: run 'sudo apt-get install libusb-1.0-0' (pyrealsense2 needs it)"
  fi
fi

# 5. The ROS wheels' CMake files name /opt/python/cp311-cp311 paths (the manylinux build machine): point them
#    at this Python's headers and the venv's numpy.
OPT=/opt/python/cp311-cp311
INC=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NUMPY=$("$VPY" -c 'import numpy, os; print(os.path.dirname(numpy.__file__))')
want_links() { [ "$(readlink "$OPT/include/python3.11" 2>/dev/null)" = "$INC" ] && [ "$(readlink "$OPT/lib/python3.11/site-packages/numpy" 2>/dev/null)" = "$NUMPY" ]; }
if ! want_links; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  log "linking $OPT -> this Python's include dir and the venv's numpy (ROS wheel quirk)"
  $SUDO mkdir -p "$OPT/include" "$OPT/lib/python3.11/site-packages"
  $SUDO ln -sfn "$INC" "$OPT/include/python3.11"
  $SUDO ln -sfn "$NUMPY" "$OPT/lib/python3.11/site-packages/numpy"
fi

# 6. colcon build of the interfaces (the Python package itself is the editable install above).
build_hash=$(hash_of CMakeLists.txt package.xml msg/* srv/* action/* vendor/tf2_msgs/*.* vendor/tf2_msgs/msg/*)
if ! stamp_ok colcon "$build_hash" || [ ! -f install/manipllm/share/manipllm/package.xml ]; then
  log "colcon build (interfaces) -> install/"
  mkdir -p log  # incremental: never delete install/ under running processes
  # numpy's include dir is given through the /opt symlink: the real one lies under .venv, inside the source
  # tree, which CMake refuses in an exported target's include directories.
  (
    export PATH="$VENV/bin:$PATH" CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
    # tf2_msgs has no PyPI wheel: build the vendored copy (identical definitions) for /tf and /tf_static.
    "$VENV/bin/colcon" --log-base log build --paths . vendor/tf2_msgs --event-handlers console_cohesion- summary+ \
      --cmake-args -DMANIPLLM_INSTALL_PYTHON=OFF -DBUILD_TESTING=OFF \
      -DPython3_EXECUTABLE="$VPY" \
      -DPython3_NumPy_INCLUDE_DIR="$OPT/lib/python3.11/site-packages/numpy/_core/include" >log/colcon-build.txt 2>&1 \
      || { tail -40 log/colcon-build.txt >&2; echo "colcon build failed: see log/colcon-build.txt" >&2; exit 1; }
  )
  stamp_set colcon "$build_hash"
fi
log "ready: .venv/bin/manipllm doctor"
