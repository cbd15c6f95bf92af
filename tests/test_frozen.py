"""A weight its owner froze (requires_grad=False) is never trained by any recipe, and the compressed model keeps the
requires_grad flags of every parameter. The reference is torch's own meaning of the flag: no gradient reaches a frozen
parameter, so no optimizer step moves it; a frozen weight ends where compression alone (no training) puts it."""

import pytest
import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import cluster


class Net(nn.Module):
    """An MLP for 8x8 digits whose first layer the user froze (weight and bias), and whose last bias too."""

    def __init__(self, width=32):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.fc3 = nn.Linear(64, width), nn.Linear(width, width), nn.Linear(width, 10)
        self.fc1.requires_grad_(False)
        self.fc3.bias.requires_grad_(False)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x.flatten(1))))))


@pytest.fixture(scope="module")
def digits():
    return ce.load_dataset("digits")


def flags(model):
    return {name: p.requires_grad for name, p in model.named_parameters()}


def clustered(w, k, recipe, mask=None):
    """`w` on its k-means centroids as the clustering stage puts it, before any fine-tuning."""
    return cluster.shared_weight(*cluster.cluster_weight(w, k, recipe.cluster_init, mask, recipe.seed))


@pytest.mark.parametrize("recipe", [ce.Recipe(sparsity=0.5, finetune_epochs=2),
                                    ce.Recipe(clusters=16, finetune_epochs=2),
                                    ce.Recipe(sparsity=0.5, clusters=8, finetune_epochs=2),
                                    ce.Recipe(bits=4, finetune_epochs=2)], ids=lambda r: str(r.changes()))
def test_no_recipe_trains_a_frozen_weight_and_every_flag_comes_back(digits, recipe):
    """Clustering fine-tuned the frozen layer's centroids (2,048 of its 2,048 weights moved), and every recipe
    handed back fc1.weight with requires_grad True while fc1.bias stayed False."""
    model = Net()
    before = flags(model)
    tuned = ce.compress(model, recipe, digits)
    untuned = ce.compress(model, recipe.replace(finetune_epochs=0), digits)
    assert flags(tuned.model) == before and flags(model) == before
    assert torch.equal(tuned.model.fc1.weight, untuned.model.fc1.weight)  # compressed, not trained
    assert torch.equal(tuned.model.fc1.bias, model.fc1.bias) and torch.equal(tuned.model.fc3.bias, model.fc3.bias)
    assert not torch.equal(tuned.model.fc2.bias, untuned.model.fc2.bias)  # the trainable parameters did train
    if recipe.clusters and not recipe.sparsity:
        assert torch.equal(tuned.model.fc1.weight, clustered(model.fc1.weight, recipe.clusters, recipe))


def test_distillation_and_its_fine_tune_leave_a_frozen_student_layer_alone(digits):
    model = Net()
    student = Net(width=16)
    recipe = ce.Recipe(temperature=4.0, distill_epochs=1, clusters=16, finetune_epochs=1)
    res = ce.compress(model, recipe, digits, student=student)
    assert flags(res.model) == flags(student)
    assert torch.equal(res.model.fc1.weight, clustered(student.fc1.weight, 16, recipe))
    assert torch.equal(res.model.fc1.bias, student.fc1.bias)


def test_fit_budgets_centroid_step_leaves_a_frozen_layer_on_its_k_means_centroids(digits, tmp_path):
    model = Net()
    dense = sum(t.numel() * 4 for t in model.state_dict().values())
    res, plan = ce.fit_budget(model, digits, dense // 4, finetune_epochs=1, cache_dir=tmp_path)
    assert plan["fits"] and flags(res.model) == flags(model)
    w = res.model.fc1.weight
    k = res.recipe.layer("fc1.weight", False)[1]
    kept = w != 0
    # pruning a frozen layer only zeroes some of its weights; clustering puts the rest on their k-means centroids
    assert torch.equal(w[kept], model.fc1.weight[kept]) if k is None else torch.equal(
        w, clustered(model.fc1.weight, k, res.recipe, kept))


@pytest.mark.parametrize("recipe", [ce.Recipe(sparsity=0.5, finetune_epochs=1), ce.Recipe(clusters=4, finetune_epochs=1),
                                    ce.Recipe(temperature=2.0)], ids=["prune", "cluster", "distil"])
def test_a_wholly_frozen_model_or_student_is_refused_in_words_before_training(digits, recipe):
    """Nothing left to train: torch's 'optimizer got an empty parameter list' escaped after the compression ran."""
    net = Net().requires_grad_(False)
    student = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).requires_grad_(False)
    with pytest.raises(ce.RecipeError, match=r"every parameter of the (model|student) is frozen"):
        ce.compress(Net() if recipe.temperature else net, recipe, digits,
                    student=student if recipe.temperature else None)


def test_a_wholly_frozen_model_compresses_without_training(digits):
    net = Net().requires_grad_(False)
    res = ce.compress(net, ce.Recipe(sparsity=0.5, clusters=4), digits)
    assert not any(p.requires_grad for p in res.model.parameters()) and res.metrics["accuracy"] is not None


def test_a_folded_frozen_batchnorm_gives_its_conv_a_frozen_bias():
    """Folding a BatchNorm into a conv without a bias adds one, standing in for the norm's shift: it is frozen when
    the norm was (a frozen backbone stays frozen once folded), trainable when the norm was."""
    from compress_engine.core.fold import fold_batchnorm
    for frozen in (True, False):
        net = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4))
        net.requires_grad_(not frozen)
        assert fold_batchnorm(net)[0].bias.requires_grad is not frozen
