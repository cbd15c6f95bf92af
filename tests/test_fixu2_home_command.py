"""Home's command line for the sidebar's model: the model's own start, which it survives. It once said
--sparsity 0.9 --clusters 16 for every model, and ResNet-8 ran at chance (10.42 %) with it."""

import re
import shlex
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import compress_engine as ce

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.mark.parametrize("name", [c["name"] for c in ce.list_models()  # the sidebar's sample models
                                  if not c["name"].startswith("teacher")])
def test_home_command_is_the_models_start(name, monkeypatch):
    from compress_engine.playground import cli
    from pages import common
    monkeypatch.setattr(common, "warm", lambda: None)  # no background runs: this test reads the page only
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["model"] = name
    at.run()
    assert not at.exception, at.exception
    command = next(re.search(r"`(python -m compress_engine run [^`]+)`", m.value) for m in at.markdown
                   if "python -m compress_engine run" in m.value).group(1)
    argv = shlex.split(command)[3:]
    args = cli.parser().parse_args(argv)  # the CLI's own parser: every flag is one it takes
    assert args.cmd == "run" and args.model == name and args.json
    assert cli.recipe_from(args) == ce.Recipe(**common.starts(name)["pipeline"])
