"""A sweep's progress lines gave each point's seconds to 3 significant figures, so the column changed shape from line
to line ('0.24 s' then '0.0896 s'). Every point now says its seconds with two decimals."""

import re

import pytest

from compress_engine.playground import cli


@pytest.mark.parametrize("seconds, said", [(0.24, "0.24 s"), (0.0896, "0.09 s"), (12.345, "12.35 s"),
                                           (123.4, "123.40 s")])
def test_each_point_says_its_seconds_with_two_decimals(capsys, seconds, said):
    cli.point_line("sparsity")(1, 2, {"sparsity": 0.5, "accuracy": 0.5}, seconds)
    line = capsys.readouterr().err.rstrip("\n")
    assert line == f"point 1/2: sparsity=0.5 accuracy 0.5000, {said}"
    assert re.search(r", \d+\.\d\d s$", line)
