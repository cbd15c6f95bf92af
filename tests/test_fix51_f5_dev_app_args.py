"""`bash scripts/dev.sh app --server.port 8632` started the dashboard on 8501: dev.sh ran serve.py without the
arguments after `app`, although serve.py takes `streamlit run` options and README tells a teacher to start it with
`--browser.serverAddress`. dev.sh now passes them on (and prints the address with that port), and serve.py hands
them to `streamlit run`."""

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_dev_sh_app_passes_its_arguments_to_serve_py(tmp_path):
    # A copy of dev.sh in a checkout whose set-up is done (a stamp matching its requirements.txt and pyproject.toml,
    # so no pip runs) and whose .venv python only prints what it is given: what dev.sh would start, without starting it.
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "dev.sh", tmp_path / "scripts" / "dev.sh")
    (tmp_path / "requirements.txt").write_text("torch==2.13.0\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    python = venv_bin / "python"
    python.write_text('#!/bin/sh\n[ "$1" = -c ] && exit 0\nfor a in "$@"; do echo "arg: $a"; done\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    want = hashlib.sha256(b"torch==2.13.0\n[project]\n").hexdigest()
    (tmp_path / ".venv" / ".dev-setup-stamp").write_text(want + "\n")
    env = {**os.environ, "COMPRESS_DATA_DIR": str(tmp_path)}  # set: dev.sh installs no dataset with apt
    out = subprocess.run(["bash", str(tmp_path / "scripts" / "dev.sh"), "app", "--server.port", "8632",
                          "--browser.serverAddress", "10.1.2.3"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    args = [line[len("arg: "):] for line in out.stdout.splitlines() if line.startswith("arg: ")]
    assert args == ["scripts/serve.py", "--server.port", "8632", "--browser.serverAddress", "10.1.2.3"]
    assert ":8501" not in out.stdout  # the address it prints, if any, has the port asked for
    out = subprocess.run(["bash", str(tmp_path / "scripts" / "dev.sh"), "app"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert [line for line in out.stdout.splitlines() if line.startswith("arg: ")] == ["arg: scripts/serve.py"]


def test_serve_py_hands_its_arguments_to_streamlit_run():
    # `--help` is one of them: streamlit run's own help, listing the options a teacher may pass, instead of a server
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "serve.py"), "--help"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert "Usage: streamlit run" in out.stdout and "--server.port" in out.stdout
    assert "--browser.serverAddress" in out.stdout
