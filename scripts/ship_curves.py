"""Ship a sample model's one-shot runs for the dashboard's technique pages (compress_engine.playground.curves).

    .venv/bin/python scripts/ship_curves.py lenet-300-100 lenet-5 resnet-8      # ~30 min on 2 cores, 26 of them ResNet-8

Runs each technique page on the model at its first setting (and VARIANTS: Pruning at its other threshold, the
Pipeline's Deep Compression button; for a model too slow to compute ahead, every value of SLIDERS), in
Streamlit's AppTest on the whole Fashion-MNIST test set, records every run the pages evaluate, and writes their
metrics to sample_models/curves/<name>.json, keyed by the model's and the data's fingerprints. The pages compute
them here exactly as they would for a visitor: this script asks for nothing else. Run it again after `train`
changes the weights; tests/test_curves.py fails while the shipped runs are not the pages' current ones.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = ("pruning", "clustering", "quantization", "pipeline", "export")
# what a visitor does first beside each page's start: {widget key: value} to set, or a button's key to press. Pruning:
# the other threshold, to see why it is not the start; Pipeline: the Deep Compression button (its one-shot runs show
# until its fine-tuning is asked for)
VARIANTS = {"pruning": [{"prune_scope": "global"}, {"prune_scope": "layer"}], "pipeline": ["pipe_preset"]}
# a model too slow to evaluate for the pages to compute ahead (pages.common.WARM_MAX_EVAL: ResNet-8) ships every value
# of these sliders at its page's start as well (each slider moved alone), so a class moving them gets answers, not
# 5-7 s evaluations each. Not Export's sparsity: its 0.1 % steps are 1,000 values.
SLIDERS = {"pruning": ("prune_sparsity",), "clustering": ("cluster_k",), "pipeline": ("pipe_sparsity", "pipe_clusters")}


def apply(at, variant):
    """Do one VARIANTS entry in AppTest `at` and run the page again."""
    if isinstance(variant, str):
        at.button(key=variant).click()
    else:
        for key, value in variant.items():
            at.session_state[key] = value
    return at.run()


def slider_values(at, key):
    """Every value the page's slider (or select slider) `key` offers, in AppTest `at`, of the type it holds."""
    sliders = [w for w in at.slider if w.key == key]
    widget = sliders[0] if sliders else at.select_slider(key=key)
    kind = type(widget.value)
    if sliders:
        return [kind(v) for v in range(int(widget.min), int(widget.max) + 1, int(widget.step))]
    return [kind(o) for o in widget.options]


def record(name, threads):
    """Run the pages on sample model `name`; -> ({recipe JSON: metrics} of every evaluated one-shot run, the median
    seconds of their evaluations)."""
    import torch
    from streamlit.testing.v1 import AppTest

    import compress_engine as ce

    torch.set_num_threads(threads)
    compress, runs, seconds = ce.compress, {}, []

    def recording(model, recipe, data, *args, **kw):
        res = compress(model, recipe, data, *args, **kw)
        if kw.get("evaluate", True) and not ce.trained.trains(recipe) and kw.get("student") is None:
            runs[recipe.to_json()] = res.metrics
            seconds.append(res.timings["evaluate"])
        return res

    ce.compress = recording  # what the pages call (ce.compress), for this process
    try:
        for page in PAGES:
            for variant in [{}] + VARIANTS.get(page, []):
                t = time.perf_counter()
                at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
                at.session_state["model"] = name
                at.switch_page(f"pages/{page}.py").run()
                if variant:
                    apply(at, variant)
                problems = list(at.exception) + list(at.error)
                if problems:
                    raise SystemExit(f"{page} {variant}: {problems[0]}")
                print(f"{page} {variant or 'start'}: {len(runs)} runs so far, {time.perf_counter() - t:.0f} s",
                      flush=True)
        from pages import common
        if statistics.median(seconds) > common.WARM_MAX_EVAL:
            for page, key in ((page, key) for page, keys in SLIDERS.items() for key in keys):
                t = time.perf_counter()
                at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
                at.session_state["model"] = name
                at.switch_page(f"pages/{page}.py").run()
                for value in slider_values(at, key):
                    at.session_state[key] = value
                    at.run()
                    problems = list(at.exception) + list(at.error)
                    if problems:
                        raise SystemExit(f"{page} {key}={value}: {problems[0]}")
                print(f"{page}: every {key}: {len(runs)} runs so far, {time.perf_counter() - t:.0f} s", flush=True)
    finally:
        ce.compress = compress
    return runs, statistics.median(seconds)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="+", metavar="NAME", help="sample models, e.g. resnet-8")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:  # a private run store and trained results: nothing kept, nothing read
        os.environ.update(COMPRESS_STORE=f"{tmp}/runs.sqlite", COMPRESS_TRAINED=f"{tmp}/trained",
                          COMPRESS_CACHE=f"{tmp}/cache")
        import compress_engine as ce
        from compress_engine.playground.sweeps import model_fingerprint

        data = ce.load_dataset(os.environ.get("COMPRESS_DATASET", "fashion-mnist"))
        for name in args.names:
            ce.curves.path(name).unlink(missing_ok=True)  # the pages must compute every run, not read the old ones
            runs, seconds = record(name, args.threads)
            out = ce.curves.ship(name, model_fingerprint(ce.load_model(name)), data.fingerprint(), runs,
                                 evaluate_s=round(seconds, 3))
            print(f"{name}: {len(runs)} runs -> {out.relative_to(ROOT)} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
