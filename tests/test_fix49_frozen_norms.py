"""A frozen backbone (requires_grad=False) keeps its BatchNorm statistics through fine-tuning, as it keeps its
parameters: a reviewer's frozen block's running_mean moved while README promised frozen layers are not trained."""

import torch
from torch import nn

import compress_engine as ce
from compress_engine.core import train


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x):
        return self.head(self.backbone(x))


def test_a_frozen_batchnorm_keeps_its_statistics_and_a_trained_one_learns():
    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():  # statistics as a pretrained backbone has them, not a fresh layer's zeros and ones
        for bn in (net.backbone[1], net.head[1]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    net.backbone.requires_grad_(False)
    res = ce.compress(net, ce.Recipe(sparsity=0.5, finetune_epochs=1), ce.load_dataset("digits"))
    got, given = res.model.state_dict(), net.state_dict()
    for k in ("backbone.1.running_mean", "backbone.1.running_var", "backbone.1.weight", "backbone.1.bias"):
        assert torch.equal(got[k], given[k]), k
    assert not torch.equal(got["head.1.running_mean"], given["head.1.running_mean"])
    assert train.frozen_norms(res.model) == [res.model.backbone[1]]
    assert not res.model.training
