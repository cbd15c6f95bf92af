"""The channels-last trial (train._probe_channels_last) leaves the caller's model as it was: a model the user put
channels-last comes back channels-last after train.logits, every parameter and buffer the same tensor object."""

import torch

from compress_engine.core import train
from compress_engine.playground import zoo


def test_logits_keeps_a_channels_last_model_channels_last():
    torch.manual_seed(0)
    for spec in ({"arch": "lenet5", "widths": [4, 8, 16]},
                 {"arch": "resnet", "widths": [8], "inner": [8], "batchnorm": True, "in_channels": 1, "classes": 10}):
        model = zoo.build(spec).eval().to(memory_format=torch.channels_last)
        params = {n: p for n, p in model.named_parameters()}
        before = {n: t.is_contiguous(memory_format=torch.channels_last)
                  for n, t in [*model.named_parameters(), *model.named_buffers()] if t.dim() == 4}
        assert before and all(before.values())
        x = torch.randn(3, 1, 28, 28)
        out = train.logits(model, x)
        after = {n: t.is_contiguous(memory_format=torch.channels_last)
                 for n, t in [*model.named_parameters(), *model.named_buffers()] if t.dim() == 4}
        assert after == before
        assert all(p is params[n] for n, p in model.named_parameters())
        with torch.no_grad():
            assert torch.allclose(out, model(x), atol=1e-5)


def test_a_default_layout_model_stays_in_the_default_layout():
    model = zoo.build({"arch": "lenet5", "widths": [4, 8, 16]}).eval()
    train.logits(model, torch.randn(3, 1, 28, 28))
    assert all(p.is_contiguous() for p in model.parameters())
