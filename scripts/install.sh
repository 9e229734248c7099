#!/usr/bin/env bash
# Set up everything napari-sam2 needs on a fresh Debian machine: system libraries for the
# viewer (Qt under xvfb), a virtual environment in .venv with the package, its extras and the
# reference oracles used by the tests. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxkbcommon0 libxcb-cursor0
  libdbus-1-3 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libfontconfig1 libglib2.0-0
  orthanc orthanc-dicomweb)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip setuptools wheel
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build from the index.
pip install -q torch==2.14.1 torchvision==0.29.1
pip install -q -e '.[napari,batch,pacs,fast,oracle,test]'
# The official SAM 2 package is a test oracle only (parity on random weights). Its sdist
# must build without CUDA and without pulling its pinned dependencies.
python -c "import sam2" 2>/dev/null || SAM2_BUILD_CUDA=0 pip install -q --no-deps --no-build-isolation sam2==1.1.0
