"""The command line's sweep as a user asking for a grid wrote it: `--field sparsity --values 0.5,0.8 --field bits
--values 4,8` swept bits alone (argparse keeps a repeated flag's last value), dropping the sparsity values without a
word, and `--field bits --values 4,8 --bits 2` ignored --bits 2. Repeated --field/--values pairs are a grid now
(tests/test_fix53_grid_cli.py); what is still no grid stops with exit status 2 before any work, saying what to do:
a --values given twice for one field, a field given twice, a --field without its --values, an unknown field, a swept
field's own flag."""

import json

import pytest

from compress_engine.playground.cli import main


@pytest.mark.parametrize("argv, said", [
    (["--field", "sparsity", "--values", "0.5", "--values=0.9"],
     "error: --values is given twice for --field sparsity ('0.5', '0.9'): give all of one field's values in one "
     "--values"),
    (["--field", "sparsity", "--values", "0.5", "--field", "bits", "--values", "4", "--field", "sparsity", "--values",
      "0.9"], "error: --field 'sparsity' is given twice: a grid varies each field once"),
    (["--field", "sparsity", "--field", "bits", "--values", "4,8"],
     "error: --field sparsity has no --values before --field bits: a grid gives each field its own --values"),
    (["--field", "sparsity", "--values", "0.5", "--field", "bits"], "error: --field bits has no --values"),
    (["--values", "0.5", "--field", "sparsity"], "error: --values '0.5' comes before any --field"),
    (["--field", "sparsity", "--values", "0.5", "--field", "nope", "--values", "1"],
     "error: --field 'nope' is not a recipe field"),
    (["--field", "bits", "--values", "4,8", "--bits", "2"],
     "error: --bits and --field bits are both given: the sweep sets bits to each of --values"),
    (["--field", "sparsity", "--values", "0.5", "--field", "bits", "--values", "4,8", "--bits", "2"],
     "error: --bits and --field bits are both given"),
])
def test_what_is_no_grid_or_an_ignored_flag_is_refused(argv, said, capsys):
    code = main(["sweep", "--model", "lenet-5", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith(said) and out == "", err


def test_one_field_and_other_flags_still_sweep(capsys, fmnist):
    code = main(["sweep", "--model", "lenet-5", "--field", "bits", "--values", "8", "--sparsity", "0.5"])
    out, _ = capsys.readouterr()
    assert code == 0 and [r["bits"] for r in json.loads(out)] == [8]
