"""`compression-playground --version` prints the installed package's version and torch's, exit 0 (it was refused:
"the following arguments are required: cmd"), which a user of their own venv reaches for first."""

from importlib import metadata

import pytest

from compress_engine.playground import cli


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("compression-playground ")
    assert f"(torch {metadata.version('torch')})" in out
    try:
        assert metadata.version("compression-playground") in out
    except metadata.PackageNotFoundError:
        assert "not installed" in out
