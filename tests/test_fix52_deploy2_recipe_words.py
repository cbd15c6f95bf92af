"""Recipe(clusters=16, layers={"b.weight": {"clusters": None}}) was taken and silently clustered b.weight (None read as
"the recipe's count"): it is refused now, saying how to cluster only some layers. help(Recipe) names every numeric
field's allowed values, from RANGES / BITS (what validation enforces), bias_bits, finetune_kd, lr, student_width and
seed among them. fit_budget's too-small refusal gives bytes, so the budget and the smallest artifact differ visibly."""

from dataclasses import fields

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import budget, recipe


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 4)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_a_per_layer_clusters_none_is_refused_with_the_way_to_do_it():
    with pytest.raises(ce.RecipeError, match=r"'b\.weight'.*None.*set clusters=None and give each clustered layer"):
        ce.Recipe(clusters=16, layers={"b.weight": {"clusters": None}})
    with pytest.raises(ce.RecipeError, match=r"'b\.weight'.*give 0\.0 to keep this layer whole"):
        ce.Recipe(layers={"b.weight": {"sparsity": None}})
    # what the message advises does leave b.weight unclustered
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=g), torch.randint(0, 4, (64,), generator=g)
    data = ce.Dataset.from_tensors(x, y, x[:32], y[:32])
    torch.manual_seed(0)
    model = Two()
    state = ce.decode(ce.compress(model, ce.Recipe(layers={"a.weight": {"clusters": 2}}), data).artifact)
    assert state["a.weight"].unique().numel() <= 2
    assert torch.equal(state["b.weight"], model.b.weight.detach())  # b.weight as it was


def test_help_names_every_numeric_fields_range_as_validation_has_it():
    text = ce.Recipe.__doc__
    for f in fields(ce.Recipe):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{f.name}="))
        if f.name in recipe.RANGES:
            lo, hi = recipe.RANGES[f.name]
            assert f"between {lo} and {hi}" in line, line
            with pytest.raises(ce.RecipeError, match=f"between {lo} and {hi}"):  # what validation says
                ce.Recipe(**{f.name: hi * 2 + 1})
    for name in ("bias_bits", "bits"):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{name}="))
        assert "1-8 or 16" in line
    for name in ("bias_bits", "finetune_kd", "lr", "student_width", "seed"):
        assert "[" in next(ln for ln in text.splitlines() if ln.strip().startswith(f"{name}="))


def test_too_small_gives_bytes_that_differ_visibly():
    message = str(budget.too_small(480, 100, 312, budget.need_bytes(100, 312)))
    assert "too small for this model and recipe (480 bytes)" in message and "smallest artifact is about 412 bytes" in message
