"""Shared fixtures: the real Fashion-MNIST (required in CI), a small slice of it for fast training
tests, and the shipped sample models."""

import os

import pytest
import torch

import compress_engine as ce
from compress_engine.data import Dataset


@pytest.fixture(scope="session")
def fmnist():
    """Full Fashion-MNIST. CI installs it, so there a missing dataset is a failure, not a skip."""
    try:
        return ce.load_dataset("fashion-mnist")
    except ce.DatasetError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Fashion-MNIST is not installed here ({e})")


@pytest.fixture(scope="session")
def small(fmnist):
    """4,096 training and 2,000 test images of the real data: enough to see fine-tuning work, fast."""
    return Dataset("fashion-mnist[small]", fmnist.train_x[:4096], fmnist.train_y[:4096],
                   fmnist.test_x[:2000], fmnist.test_y[:2000], fmnist.classes)


@pytest.fixture(scope="session")
def lenet300():
    return ce.load_model("lenet-300-100")


@pytest.fixture(scope="session")
def lenet5():
    return ce.load_model("lenet-5")


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
