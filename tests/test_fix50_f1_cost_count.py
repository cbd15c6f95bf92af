"""An upload or artifact whose FLOPs the counter fails to count is refused by the dashboard's cost limit, saying so,
instead of passing it unchecked (zoo.cost caught every exception around flops.count and returned None, which
check_cost let through); a model that does not run on the input is still left to its evaluation to refuse, and the
sample models still pass."""

import pytest
import torch

import compress_engine as ce
from compress_engine.playground import zoo

LENET = {"arch": "lenet5", "widths": [20, 50, 500]}


def test_a_model_whose_cost_cannot_be_counted_is_refused(monkeypatch):
    def broken(model, x):
        raise RuntimeError("counter broke")

    monkeypatch.setattr(zoo.flops, "count", broken)
    with pytest.raises(zoo.OverLimit, match="FLOPs per input could not be counted .RuntimeError: counter broke"):
        zoo.check_cost(zoo.build(LENET), zoo.IMAGE, "mine.safetensors")


def test_a_model_that_does_not_run_on_the_input_is_left_to_its_evaluation():
    assert zoo.cost(zoo.build(LENET), (3, 5, 5)) is None
    zoo.check_cost(zoo.build(LENET), (3, 5, 5), "mine.safetensors")


@pytest.mark.parametrize("name", ["lenet-300-100", "lenet-5", "resnet-8", "teacher-1200-1200"])
def test_sample_models_pass(name):
    zoo.check_cost(ce.load_model(name), zoo.IMAGE, name)
