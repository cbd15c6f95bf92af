"""A layer named twice in a recipe's `layers` is called a layer in the refusal, not a field."""

import pytest

import compress_engine as ce


def test_a_layer_named_twice_is_called_a_layer():
    with pytest.raises(ce.RecipeError, match="gives 'a' twice: give each layer once"):
        ce.Recipe.from_json('{"sparsity": 0.5, "layers": {"a": {"sparsity": 0.1}, "a": {"sparsity": 0.2}}}')
    with pytest.raises(ce.RecipeError, match="its JSON gives 'a' twice: give each layer once"):
        ce.Recipe(layers='{"a": {"sparsity": 0.1}, "a": {}}')


def test_a_field_given_twice_is_still_a_field():
    for text in ('{"sparsity": 0.5, "sparsity": 0.9}', '{"layers": {"a": {"sparsity": 0.1, "sparsity": 0.2}}}',
                 '{"layers": {}, "layers": {}}'):
        with pytest.raises(ce.RecipeError, match="twice: give each field once"):
            ce.Recipe.from_json(text)
