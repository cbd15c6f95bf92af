"""fast_eval_copy's copy of a temporary (sensitivity.scan's fast_eval_copy(_deployed(model)), flops, budget,
pipeline.speedup) is laid out channels-last when channels_last_ok's verdict says so, even after the model it was
copied from has been garbage-collected: it used to be left in the default layout, its verdict True but its conv
weights not channels-last, as whether the original was still alive decided it."""

import copy
import gc

import torch

from compress_engine.core import train


def conv_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 3))


def is_channels_last(model):
    w = model[0].weight
    return w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


def test_copy_of_a_collected_temporary_is_laid_out_channels_last():
    x = torch.randn(4, 2, 8, 8)
    work = train.fast_eval_copy(copy.deepcopy(conv_net()))  # the temporary is gone once collected
    gc.collect()
    train.logits(work, x)
    assert train.channels_last_ok(work, x) is True
    assert is_channels_last(work)


def test_copy_of_a_live_model_still_is_and_the_model_keeps_its_layout():
    x = torch.randn(4, 2, 8, 8)
    model = conv_net()
    work = train.fast_eval_copy(model)
    gc.collect()
    train.logits(work, x)
    assert is_channels_last(work) and model[0].weight.is_contiguous()
    assert is_channels_last(train.fast_eval_copy(model))  # the model inherited the verdict
