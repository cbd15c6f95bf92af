#!/usr/bin/env bash
# One entry point for a fresh machine:
#   bash scripts/dev.sh app    set up, then start the dashboard on http://localhost:8501; further arguments go to
#                              `streamlit run` (app --server.port 8502, app --browser.serverAddress HOST; app --help lists them)
#   bash scripts/dev.sh test   set up (incl. headless Chromium), then run the whole test suite
#   bash scripts/dev.sh setup  set up only
# Set-up works in a virtual environment, .venv in the repo, so a system python3 that refuses pip installs
# (PEP 668: Debian 12, Ubuntu 24.04) is fine. It installs requirements.txt (exact pins) and this package in
# editable mode (console script .venv/bin/compression-playground), then stores a hash of requirements.txt and
# pyproject.toml in .venv: while they are unchanged, a re-run skips pip entirely. PYTHON=/path/to/python3
# chooses the interpreter that creates .venv (remove .venv to switch). Stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-app}
PY=${PYTHON:-python3}
VENV=.venv
VPY=$VENV/bin/python
STAMP=$VENV/.dev-setup-stamp
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_install() {  # apt_install PACKAGE... : install the Debian packages that are missing
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

make_venv() {  # .venv, created with $PY unless a working one is there
  [ -x "$VPY" ] && "$VPY" -c "" 2>/dev/null && return 0
  rm -rf "$VENV"
  echo "setup: $PY -m venv $VENV"
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then  # Debian/Ubuntu ship venv's pip bootstrap (ensurepip) apart
    rm -rf "$VENV"
    local ver; ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    apt_install python3-venv
    "$PY" -m venv "$VENV" 2>/dev/null || { rm -rf "$VENV"; apt_install "python$ver-venv"; "$PY" -m venv "$VENV"; }
  fi
}

pip_install() {  # pip_install ARGS... : the venv's pip, showing what it fetches and installs; its log on failure
  local log=$VENV/pip.log
  if ! "$VPY" -m pip install --disable-pip-version-check --progress-bar off "$@" 2>&1 | tee "$log" \
      | { grep --line-buffered -E "^(Collecting|Processing|Installing|Successfully)" || true; } \
      | cut -c1-150 | sed -u "s/^/  pip: /"; then
    echo "setup: pip install $* failed; the end of $log:" >&2
    tail -n 25 "$log" >&2
    exit 1
  fi
}

setup() {
  make_venv
  local want; want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d" " -f1)
  if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    rm -f "$STAMP"
    echo "setup: pip install -r requirements.txt into $VENV (the first time takes a few minutes: torch, Ray, Streamlit, Playwright and the rest)"
    pip_install -r requirements.txt
    echo "setup: pip install -e . (compress_engine and the compression-playground command)"
    pip_install --no-deps --no-build-isolation -e .
    "$VPY" -c "import torch, streamlit, plotly, safetensors, compress_engine" \
      || { echo "setup: python packages did not install" >&2; exit 1; }
    echo "$want" > "$STAMP"
  fi
  if [ -z "${COMPRESS_DATA_DIR:-}" ]; then apt_install dataset-fashion-mnist; fi
}

case "$what" in
  setup) setup ;;
  app)
    setup
    # .streamlit/config.toml: headless, no usage statistics, no external-IP lookup, no Deploy button
    port=8501; prev=""
    for a in "${@:2}"; do  # the port streamlit will use, for the address printed below
      case "$a" in --server.port=*) port=${a#*=} ;; esac
      [ "$prev" = "--server.port" ] && port=$a
      prev=$a
    done
    ip=$(hostname -I 2>/dev/null | awk '{print $1}') || true
    [ -n "${ip:-}" ] && echo "app: other machines on this network open http://$ip:$port"
    exec "$VPY" scripts/serve.py "${@:2}" ;;
  test)
    setup
    apt_install chromium fonts-liberation
    # two worker processes, one a core, each test file on one of them (its module fixtures built once), with one torch
    # thread each: two processes of two threads on these 2 cores slow each other many times over
    OMP_NUM_THREADS=1 exec "$VPY" -m pytest -q -rs -n 2 --dist loadfile tests ;;
  *) echo "usage: bash scripts/dev.sh [app [streamlit run options]|test|setup]" >&2; exit 2 ;;
esac
