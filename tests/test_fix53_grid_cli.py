"""The command line's grid: repeated --field F --values V pairs (refused before: a sweep varied one field, and the
user looped over the others in the shell). Now `--field sparsity --values 0.5,0.9 --field bits --values none,4` runs
every combination in one sweep: the same JSON as the single-field sweeps of each setting, each row with a key per
field; each progress line names every field; --store gets one sweep a setting of the other fields; a bad value names
its field; a grid of more points than a sweep runs, or a combination a recipe refuses, stops before any work."""

import json

from compress_engine.playground.cli import main
from compress_engine.playground.store import Store

SWEEP = ["sweep", "--model", "lenet-300-100", "--clusters", "none", "--huffman", "true"]


def run(capsys, *argv):
    code = main([*SWEEP, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_grid_prints_each_settings_single_field_rows(capsys, tiny_idx, tmp_path):
    store = tmp_path / "runs.sqlite"
    code, out, err = run(capsys, "--data", tiny_idx, "--field", "sparsity", "--values", "0.5,0.9", "--field", "bits",
                         "--values", "none,4", "--store", str(store))
    assert code == 0, err
    rows = json.loads(out)
    want = []
    for bits in ("none", "4"):  # the loop README had: one sweep a setting of the other field
        c, o, e = run(capsys, "--data", tiny_idx, "--field", "sparsity", "--values", "0.5,0.9", "--bits", bits)
        assert c == 0, e
        want += [{"sparsity": r["sparsity"], "bits": None if bits == "none" else 4,
                  **{k: v for k, v in r.items() if k != "sparsity"}} for r in json.loads(o)]
    want = [want[0], want[2], want[1], want[3]]  # the grid's order: the last field varies fastest
    assert json.dumps(rows) == json.dumps(want)  # bit for bit, a column per field
    lines = [x for x in err.splitlines() if x.startswith("point ")]
    assert [x.split(" accuracy")[0] for x in lines] == ["point 1/4: sparsity=0.5 bits=none", "point 2/4: sparsity=0.5 "
                                                        "bits=4", "point 3/4: sparsity=0.9 bits=none",
                                                        "point 4/4: sparsity=0.9 bits=4"]
    assert "4 point(s)" in err
    labels = sorted(s["label"] for s in Store(store).sweeps())
    assert labels == ["sweep #1: sparsity at bits=none (huffman=True)", "sweep #2: sparsity at bits=4 (huffman=True)"]
    code, again, err = run(capsys, "--data", tiny_idx, "--field", "sparsity", "--values", "0.5,0.9", "--field",
                           "bits", "--values", "none,4", "--store", str(store))
    assert code == 0 and again == out and err.count(", stored") == 4  # the rerun reuses every point


def test_a_bad_grid_value_names_its_field_and_big_or_impossible_grids_stop_first(capsys):
    code, out, err = run(capsys, "--field", "sparsity", "--values", "0.5", "--field", "bits", "--values", "4,x")
    assert code == 2 and out == "" and err.startswith("error: --values item 2 of 2, bits='x'"), err
    hundred = ",".join(str(i) for i in range(100))
    code, out, err = run(capsys, "--field", "seed", "--values", hundred, "--field", "sparsity", "--values",
                         ",".join(str(i / 100) for i in range(100)), "--field", "bits", "--values", "4,8")
    assert code == 2 and err.startswith("error: the grid has 100 seed x 100 sparsity x 2 bits values = 20,000 "
                                        "points; a sweep runs at most 10,000"), err
    code = main(["sweep", "--model", "lenet-300-100", "--field", "bits", "--values", "4", "--field", "clusters",
                 "--values", "16"])
    err = capsys.readouterr().err
    assert code == 2 and "clusters=16 and bits=4: choose weight clustering or uniform quantization" in err, err
