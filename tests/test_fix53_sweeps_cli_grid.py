"""The command line's sweep as a user asking for a grid wrote it: `--field sparsity --values 0.5,0.8 --field bits
--values 4,8` swept bits alone (argparse keeps a repeated flag's last value), dropping the sparsity values without a
word, and `--field bits --values 4,8 --bits 2` ignored --bits 2. Both now stop with exit status 2 before any work,
the first saying how to run a grid."""

import json

import pytest

from compress_engine.playground.cli import main


@pytest.mark.parametrize("argv, said", [
    (["--field", "sparsity", "--values", "0.5,0.8", "--field", "bits", "--values", "4,8"],
     "error: --field is given twice ('sparsity', 'bits'): a sweep varies one field: for a grid, run one sweep per "
     "setting of the others"),
    (["--field", "sparsity", "--values", "0.5", "--values=0.9"], "error: --values is given twice ('0.5', '0.9')"),
    (["--field", "bits", "--values", "4,8", "--bits", "2"],
     "error: --bits and --field bits are both given: the sweep sets bits to each of --values"),
])
def test_a_grid_or_an_ignored_flag_is_refused(argv, said, capsys):
    code = main(["sweep", "--model", "lenet-5", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith(said) and out == ""


def test_one_field_and_other_flags_still_sweep(capsys, fmnist):
    code = main(["sweep", "--model", "lenet-5", "--field", "bits", "--values", "8", "--sparsity", "0.5"])
    out, _ = capsys.readouterr()
    assert code == 0 and [r["bits"] for r in json.loads(out)] == [8]
