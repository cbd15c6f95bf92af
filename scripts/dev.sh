#!/usr/bin/env bash
# One entry point for a fresh machine:
#   bash scripts/dev.sh app    set up, then start the dashboard on http://localhost:8501
#   bash scripts/dev.sh test   set up (incl. headless Chromium), then run the whole test suite
#   bash scripts/dev.sh setup  set up only
# Every step is idempotent and quiet, and the script stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-app}
PY=${PYTHON:-python3}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_install() {  # apt_install PACKAGE... : install the Debian packages that are missing
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup() {
  echo "setup: pip install -r requirements.txt"
  $PY -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | { grep -v -e "^WARNING: Location" -e "Running pip as the 'root'" || true; }
  $PY -c "import torch, streamlit, plotly, safetensors" || { echo "setup: python packages did not install" >&2; exit 1; }
  if [ -z "${COMPRESS_DATA_DIR:-}" ]; then apt_install dataset-fashion-mnist; fi
}

case "$what" in
  setup) setup ;;
  app)
    setup
    exec $PY -m streamlit run app.py --server.headless true --browser.gatherUsageStats false ;;
  test)
    setup
    apt_install chromium fonts-liberation
    exec $PY -m pytest -q tests ;;
  *) echo "usage: bash scripts/dev.sh [app|test|setup]" >&2; exit 2 ;;
esac
