"""Compression Playground's engine: prune, cluster, quantize and distil neural networks, measured in real bytes.

    import compress_engine as ce
    ds = ce.load_dataset("fashion-mnist")
    model = ce.load_model("lenet-300-100")
    result = ce.compress(model, ce.Recipe(sparsity=0.9, clusters=16), ds)
    result.metrics["artifact_bytes"] == len(result.artifact)
    ce.decode(result.artifact)   # the exact weights back
    ce.read_weights(data, "mine.safetensors")   # a user's weight file -> model, never running code
    ce.sensitivity.scan(model, ds)   # each layer alone: accuracy and bytes vs sparsity and bits
    result, plan = ce.fit_budget(model, ds, 10_000)   # fit in 10 KB: per-layer sparsity and clusters, fine-tuned
    ce.sweep(model, ce.Recipe(clusters=16), ds, "sparsity", [0.5, 0.9], workers=2)   # in-process, or on Ray

It never imports streamlit: pages call it, it does not know about pages.
"""

from .core import budget, sensitivity
from .core.budget import fit_budget
from .core.data import Dataset
from .core.encode import decode, encode, read_meta, size_breakdown
from .core.errors import ArtifactError, CompressError, DatasetError, ModelError, RecipeError
from .core.model import arch_spec, param_count
from .core.pipeline import Result, compress, reference
from .core.quantize import int8_latency
from .core.recipe import BITS, CHOICES, RANGES, Recipe
from .core.train import Stopped, logits
from .playground.sources import load_dataset
from .playground.sweeps import sweep
from .playground.zoo import decode_model, evaluate_artifact, list_models, load_model, model_card, read_weights

__all__ = ["Dataset", "load_dataset", "decode", "encode", "read_meta", "size_breakdown", "ArtifactError",
           "CompressError", "DatasetError", "ModelError", "RecipeError", "list_models", "load_model",
           "model_card", "read_weights", "Result", "compress", "decode_model", "evaluate_artifact", "sweep",
           "Recipe", "Stopped", "BITS", "CHOICES", "RANGES", "arch_spec", "param_count", "reference", "int8_latency",
           "logits", "sensitivity", "budget", "fit_budget"]
