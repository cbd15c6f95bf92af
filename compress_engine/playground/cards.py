"""The sample models' cards: which models ship, where, and what each card says. Imports no torch.

A card is the JSON beside a checkpoint (sample_models/<name>.json): architecture spec, parameters, test accuracy,
the training recipe, and the model's predicted classes for the first test images (`test_head`). Reading cards
and that head costs milliseconds, so a dashboard's first page can show a model and its predictions before torch
(1-2 s to import on a 2-core machine) has loaded; zoo.py builds and loads the models themselves.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from ..core.errors import ModelError

# why a trained sample model holds weights at exactly zero (its card's nonzero_parameters): no pixel of Fashion-MNIST
# is blank in every training image, but the zeros gather on the pixels lit in fewest images and fill the rows of
# hidden units that never fire, where gradients seldom come
WHY_ZEROS = ("weight decay shrinks the weights that seldom get a gradient (of hidden units that never fire, and of "
             "pixels blank in nearly every image) below float32's smallest normal value, where training flushes "
             "them to zero")

# Installed: compress_engine/sample_models (package data). A checkout or `pip install -e .`: the repo's sample_models/.
_PKG = Path(__file__).resolve().parents[1]
SAMPLE_DIR = next((d for d in (_PKG / "sample_models", _PKG.parent / "sample_models") if d.is_dir()),
                  _PKG.parent / "sample_models")
INSTALLED = SAMPLE_DIR == _PKG / "sample_models"  # inside an installed package, not a checkout's files

# name -> (spec, training recipe). `python -m compress_engine train NAME` reproduces the checkpoint.
SAMPLES = {
    "lenet-300-100": ({"arch": "mlp", "sizes": [784, 300, 100, 10]},
                      {"epochs": 30, "lr": 2e-3, "batch_size": 128, "weight_decay": 1e-4, "seed": 0}),
    "lenet-5": ({"arch": "lenet5", "widths": [20, 50, 500]},
                {"epochs": 20, "lr": 2e-3, "batch_size": 128, "weight_decay": 1e-4, "seed": 0}),
    "teacher-1200-1200": ({"arch": "mlp", "sizes": [784, 1200, 1200, 10], "dropout": 0.3},
                          {"epochs": 30, "lr": 1e-3, "batch_size": 128, "weight_decay": 1e-4, "seed": 0}),
    # SGD + augmentation, the usual recipe for BatchNorm ResNets; 1 thread so a shared 2-core machine keeps a core
    "resnet-8": ({"arch": "resnet", "widths": [32, 64, 128], "inner": [32, 64, 128], "batchnorm": True,
                  "in_channels": 1, "classes": 10},
                 {"epochs": 25, "lr": 0.1, "batch_size": 128, "weight_decay": 5e-4, "seed": 0,
                  "momentum": 0.9, "warmup_steps": 469, "augment": {"crop_pad": 2, "hflip": True}, "threads": 1,
                  "ship_logits": True}),
}

DESCRIPTIONS = {
    "lenet-300-100": "LeNet-300-100: a 784-300-100-10 ReLU MLP (LeCun et al. 1998; Deep Compression's first model).",
    "lenet-5": "LeNet-5, Caffe variant: conv 20@5x5, max-pool, conv 50@5x5, max-pool, fc 500, fc 10.",
    "teacher-1200-1200": "Distillation teacher: 784-1200-1200-10 MLP with dropout, as in Hinton et al. 2015.",
    "resnet-8": ("ResNet-8: conv 32@3x3 + BN, three residual blocks (32, 64, 128 channels; BatchNorm; the last two "
                 "halve the resolution), global average pooling, fc 10. BatchNorm is folded into the convs at "
                 "compression time, as deployment does."),
}


def list_models():
    """Cards of the shipped sample models (architecture, parameters, accuracy, training recipe)."""
    cards = []
    for name in SAMPLES:
        path = SAMPLE_DIR / f"{name}.json"
        if path.is_file():
            cards.append(json.loads(path.read_text()))
    return cards


def model_card(name):
    path = SAMPLE_DIR / f"{name}.json"
    if name not in SAMPLES:
        raise ModelError(f"unknown model {name!r}: choose one of {', '.join(SAMPLES)}")
    if not path.is_file():
        raise ModelError(f"{path} is missing: rebuild it with `python -m compress_engine train {name}`")
    return json.loads(path.read_text())


def deployed_parameters(card):
    """A card's parameters as the model is deployed (a ResNet's BatchNorms folded into its convs), the count its
    float32 size is 4 bytes each of; a card from before that count was kept gives the module's."""
    return card.get("deployed_parameters", card["parameters"])


def arch_text(spec):
    """A zoo spec in a few words: "MLP 784-64-10", "LeNet-5 with widths 20-50-500", "ResNet with widths 32-64-128
    (inner 16-64-128), BatchNorm"."""
    dash = lambda v: "-".join(map(str, v))  # noqa: E731
    if spec["arch"] == "mlp":
        return f"MLP {dash(spec['sizes'])}"
    if spec["arch"] == "lenet5":
        return f"LeNet-5 with widths {dash(spec['widths'])}" + (f", {spec['classes']} outputs" if "classes" in spec else "")
    inner = f" (inner {dash(spec['inner'])})" if spec["inner"] != spec["widths"] else ""
    return f"ResNet with widths {dash(spec['widths'])}{inner}, " + ("BatchNorm" if spec["batchnorm"] else "folded")


HEAD = 32  # test images whose predicted classes a card keeps (Home shows 12)


def test_set_text(data):
    """A card's "test_set": the data a model was scored on, "<name>, all <n> test images" (a Dataset)."""
    return f"{data.name}, all {len(data.y('test')):,} test images"

# What every model on the dashboard's pages takes (the sample zoo, uploads): Fashion-MNIST's 28x28 images of one
# channel, 10 classes (or fewer). Here, without torch, for the pages' data check as for zoo's upload checks.
IMAGE, CLASSES = (1, 28, 28), 10
# The data the sample models were trained on and every bench/*.py measured (its own default), and the command line's
# and the dashboard's when none is named.
DEFAULT_DATA = "fashion-mnist"


def data_label(name):
    """Data as a sentence names them: "Fashion-MNIST" for the default, else their --data name ("idx:/folder")."""
    return "Fashion-MNIST" if name == DEFAULT_DATA else name


def inputs_digest(images):
    """A short hash of images' float32 values (C order)."""
    return hashlib.blake2b(np.ascontiguousarray(images, np.float32).tobytes(), digest_size=16).hexdigest()


def head_predictions(card, data_name, images, n):
    """The predicted classes a card keeps for the first n of `images` (the first test images of dataset
    `data_name`, as float32 arrays), or None when it keeps none for those exact images or fewer than n."""
    head = card.get("test_head") or {}
    pred = head.get("predictions") or []
    if head.get("data") != data_name or not 0 <= n <= len(pred) or len(images) < len(pred):
        return None
    if inputs_digest(images[:len(pred)]) != head.get("inputs"):
        return None
    return [int(p) for p in pred[:n]]
