"""Small models and data tests share (the engine-refusal tests, tests/test_fix51_f8_*; the warning and deployment tests,
tests/test_fix52_*): what each checks is its own."""

import torch
import torch.nn.functional as F
from torch import nn

import compress_engine as ce

RECIPE = ce.Recipe(sparsity=0.5, clusters=8)


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 20, generator=g)
    y = torch.randint(0, 4, (80,), generator=g)
    return ce.Dataset.from_tensors(x[:60], y[:60], x[60:], y[60:])


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(20, 32), nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class CNNFold(nn.Module):
    fold_batchnorm = True

    def __init__(self):
        super().__init__()
        self.c, self.bn, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Linear(8, 4)

    def forward(self, x):
        h = F.relu(self.bn(self.c(x)))
        for _ in range(x.shape[2] // 4):
            h = h * 1.0
        return self.fc(h.mean((2, 3)))


class Digits(nn.Module):
    """A 64-10 linear model on scikit-learn's 8x8 digits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def gaussian_mlp(scale):
    """A small MLP fitted to 10 Gaussian classes whose centres lie `scale` apart (noise 1): easy at 3, hard at 0.2;
    (model in eval mode, its Dataset)."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 32, generator=g) * scale
    y = torch.arange(400) % 10
    x = centres[y] + torch.randn(400, 32, generator=g)
    ds = ce.Dataset.from_tensors(x[:300], y[:300], x[300:], y[300:])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:300]), y[:300]).backward()
        opt.step()
    return model.eval(), ds


def images_12():
    """64 random 1×12×12 images of 10 classes (the first 32 also the test split)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 12, 12, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    return ce.Dataset.from_tensors(x, y, x[:32], y[:32])


def interrupt_point(monkeypatch, n):
    """Make the sweep's n-th point raise KeyboardInterrupt (a Ctrl-C while it runs); the others run as usual."""
    from compress_engine.playground import sweeps
    real, calls = sweeps.run_point, []

    def run_point(*a):
        calls.append(a)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*a)
    monkeypatch.setattr(sweeps, "run_point", run_point)
