"""Recipe's help and refusals for a notebook user: help(Recipe) shows what each field means (it listed names and
defaults only; the meanings were # comments), a percent given for a fraction is refused with the fraction meant
(Recipe(sparsity=90), and --sparsity 90 on the command line), and conv_clusters without clusters names layers= as the
way to cluster only some layers."""

import pydoc
from dataclasses import fields

import pytest

import compress_engine as ce
from compress_engine.playground import cli


def test_help_says_what_every_field_means_with_its_default():
    text = pydoc.render_doc(ce.Recipe, renderer=pydoc.plaintext)
    for f in fields(ce.Recipe):
        assert f"{f.name}={f.default!r}: " in text, f.name
    assert "fraction of weights" in text and "fine-tuning learning rate (Adam), default 5e-4" in text


@pytest.mark.parametrize("field, given, meant", [("sparsity", 90, "0.9"), ("alpha", 70, "0.7"),
                                                  ("sparsity", 12.5, "0.125")])
def test_a_percent_for_a_fraction_says_the_fraction_meant(field, given, meant):
    with pytest.raises(ce.RecipeError) as e:
        ce.Recipe(**{field: given})
    assert str(e.value).endswith(f"must be between {ce.RANGES[field][0]} and {ce.RANGES[field][1]} "
                                 f"(a fraction: did you mean {meant}?)")


@pytest.mark.parametrize("given", [-0.1, 1000, 100.5])
def test_no_fraction_is_suggested_where_none_fits(given):
    with pytest.raises(ce.RecipeError) as e:
        ce.Recipe(sparsity=given)
    assert "did you mean" not in str(e.value)


def test_the_command_line_gives_the_same_hint(capsys):
    assert cli.main(["run", "--sparsity", "90"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --sparsity='90': must be between 0.0 and 0.999 (a fraction: did you mean 0.9?)\n"


def test_conv_clusters_alone_names_the_per_layer_alternative():
    with pytest.raises(ce.RecipeError, match="needs clusters set too") as e:
        ce.Recipe(conv_clusters=8)
    assert "layers={'conv1.weight': {'clusters': 8}}" in str(e.value)
    # and that alternative is a recipe that builds: clusters on the layers named only
    assert ce.Recipe(layers={"conv1.weight": {"clusters": 8}}).layer("conv1.weight", conv=True) == (0.0, 8)
