"""Compression Playground's engine: prune, cluster, quantize and distil neural networks, measured in real bytes.

    import compress_engine as ce
    ds = ce.load_dataset("fashion-mnist")
    model = ce.load_model("lenet-300-100")
    result = ce.compress(model, ce.Recipe(sparsity=0.9, clusters=16), ds)
    result.metrics["artifact_bytes"] == len(result.artifact)
    ce.decode(result.artifact)   # the exact weights back
    ce.weights_safetensors(result.artifact)   # them as safetensors bytes, for plain PyTorch (safetensors.torch.load)
    ce.int8_safetensors(result.artifact)      # int8 / uint8 codes + scale / zero point or codebook; ce.read_int8 reads back
    ce.describe(model, ds)       # what compress() would compress, carry and structurally prune, before any work
    ce.estimate(result.model, ds)   # the accuracy on 1,000 test images, with its 95 % margin: a tenth of the time
    ce.read_weights(file_bytes, "mine.safetensors")   # a weight file of a zoo architecture -> model, running no code
    ce.sensitivity.scan(model, ds)   # each layer alone: accuracy, KL and bytes at each sparsity x cluster count
    result, plan = ce.fit_budget(model, ds, 10_000)   # fit in 10 KB: per-layer sparsity and clusters, fine-tuned
    result, plan = ce.fit_flops(model, ds, 0.25)      # a quarter of the FLOPs: whole units, every group alike
    ce.sweep(model, ce.Recipe(clusters=16), ds, "sparsity", [0.5, 0.9], workers=2)   # in-process, or on Ray
    ce.sweep(..., store=ce.Store())   # each point saved in the run store (the Compare page's) as it finishes
    ce.sweep(model, ce.Recipe(), ds, {"sparsity": [0.5, 0.9], "bits": [4, 8]})   # a grid: every combination, one pool

It never imports streamlit: pages call it, it does not know about pages.
"""

import importlib

from .core.errors import ArtifactError, CompressError, DatasetError, ModelError, RecipeError

# Everything else is imported on first use (PEP 562), so `import compress_engine` costs milliseconds, not torch's
# 1-2 s: the `app` command starts the dashboard's server first and imports torch while the browser loads the page.
_MODULES = {"budget": ".core.budget", "curves": ".playground.curves", "flops": ".core.flops",
            "sensitivity": ".core.sensitivity",
            # the dashboard's machinery: its training pool, the trained-results cache, sweep keys
            "jobs": ".playground.jobs", "sweeps": ".playground.sweeps", "trained": ".playground.trained"}
_NAMES = {
    ".core.budget": ["fit_budget"], ".core.chance": ["CollapseWarning"], ".core.data": ["Dataset", "IGNORE"], ".core.flops": ["fit_flops"],
    ".core.deploy": ["INT8_WARNING", "deploy_files", "int8_safetensors", "read_int8", "weights_safetensors"],
    ".core.encode": ["decode", "encode", "read_meta", "size_breakdown"],
    ".core.model": ["arch_spec", "param_count", "student_mlp"],
    ".core.pipeline": ["Result", "check_recipe", "compress", "dense_reference", "describe", "estimate", "reference",
                       "speedup"],
    ".core.quantize": ["int8_latency"], ".core.recipe": ["BITS", "CHOICES", "RANGES", "Recipe"],
    ".core.train": ["Stopped", "logits", "native_bfloat16", "predictions", "prepare_training", "stop_when"],
    ".playground.sources": ["first_test_images", "load_dataset"], ".playground.store": ["Store"],
    ".playground.sweeps": ["sweep"],
    ".playground.cards": ["arch_text", "head_predictions", "list_models", "model_card"],
    ".playground.zoo": ["card_sizes", "decode_model", "evaluate_artifact", "kept_test_logits", "load_model",
                        "read_weights"],
}
_WHERE = {**{n: m for m, names in _NAMES.items() for n in names}, **_MODULES}


def __getattr__(name):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'compress_engine' has no attribute {name!r}")
    module = importlib.import_module(where, __name__)
    value = module if name in _MODULES else getattr(module, name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = ["ArtifactError", "CompressError", "DatasetError", "ModelError", "RecipeError", *_WHERE]
