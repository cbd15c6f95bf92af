"""fixS: sizes the command line reports use the project's one convention (units: 1 MB = 1,000,000 bytes)."""

from compress_engine.playground import store, units
from compress_engine.playground.cli import main


def test_eval_of_a_too_large_file_names_its_size_and_the_limit_in_decimal_mb(capsys, tmp_path):
    """A 270,000,000-byte file read '257.5 MB' (MiB) against a limit of '256 MB'; in the project's MB it is
    270.0 MB, and the limit is the run store's own (store.MAX_ARTIFACT), shown in the same unit."""
    big = tmp_path / "big.cpg"
    with open(big, "wb") as f:  # sparse: no disk used
        f.truncate(270_000_000)
    assert main(["eval", str(big)]) == 2
    err = capsys.readouterr().err
    assert f"is 270.0 MB; artifacts are at most {units.mb(store.MAX_ARTIFACT)} ({store.MAX_ARTIFACT:,} bytes)" in err, err
    assert "257.5" not in err

