"""A conv net whose forward takes channels-last in eval mode but not in train mode (an auxiliary head used only while
training, as Inception's, that flattens with view) fine-tunes in the default layout: compress() raised torch's raw
view/stride RuntimeError. The train-mode trial leaves the training as it was: BatchNorm statistics and the random
state are untouched, and a model that trains channels-last still does."""

import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import train


class AuxNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 2 * 2, 3)
        self.aux = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        out = self.fc(self.drop(torch.flatten(h, 1)))
        if self.training:
            out = out + 0.0 * self.aux(h.view(h.size(0), -1))
        return out


def data():
    torch.manual_seed(0)
    x, y = torch.randn(64, 2, 4, 4), torch.randint(0, 3, (64,))
    return ce.Dataset.from_tensors(x, y, x[:20], y[:20])


def test_a_training_only_view_fine_tunes_in_the_default_layout():
    torch.manual_seed(0)
    result = ce.compress(AuxNet(), ce.Recipe(sparsity=0.5, finetune_epochs=1), data())
    assert 0.0 <= result.metrics["accuracy"] <= 1.0


class Safe(AuxNet):
    def forward(self, x):
        return self.fc(self.drop(torch.flatten(torch.relu(self.bn(self.conv(x))), 1)))


def test_the_trial_changes_no_statistics_nor_random_state():
    x = data().x("train")
    for model, verdict in ((AuxNet(), False), (Safe(), True)):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        rng = torch.random.get_rng_state()
        assert train._trains_channels_last(model, x[:2]) is verdict
        assert torch.equal(torch.random.get_rng_state(), rng) and model.training
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
