import json

import pytest

from compress_engine.__main__ import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_prints_metrics(capsys, fmnist, tmp_path):
    art = tmp_path / "a.cpg"
    code, out, _ = run(capsys, "run", "--model", "lenet-300-100", "--sparsity", "0.9", "--clusters", "16",
                       "--huffman", "true", "--json", "--out", str(art))
    assert code == 0
    res = json.loads(out)
    assert res["recipe"]["clusters"] == 16 and res["recipe"]["huffman"] is True
    assert res["metrics"]["artifact_bytes"] == art.stat().st_size
    code, out, _ = run(capsys, "eval", str(art))
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(res["metrics"]["accuracy"])


@pytest.mark.parametrize("argv,words", [
    (["run", "--sparsity", "1.5"], "sparsity=1.5"),
    (["run", "--bits", "9"], "bits=9"),
    (["run", "--clusters", "abc"], "clusters="),
    (["run", "--model", "nope"], "unknown model"),
    (["run", "--data", "idx:/nonexistent"], "does not exist"),
    (["sweep", "--field", "colour", "--values", "1"], "not a recipe field"),
    (["sweep", "--field", "bits", "--values", "4,99"], "bits=99"),
    (["eval", "/nonexistent.cpg"], "does not exist"),
])
def test_bad_flags_exit_2_with_message(capsys, fmnist, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2 and words in err and out == ""


def test_sweep_lists_rows(capsys, fmnist):
    code, out, _ = run(capsys, "sweep", "--field", "bits", "--values", "8,4,2", "--sparsity", "0.5")
    rows = json.loads(out)
    assert code == 0 and [r["bits"] for r in rows] == [8, 4, 2]
    assert rows[0]["artifact_bytes"] > rows[2]["artifact_bytes"]
