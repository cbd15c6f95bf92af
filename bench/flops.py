"""Structured pruning to a FLOPs budget: the same fraction of units in every group (uniform) against a fraction per
group found by ce.fit_flops's search, at the same budget.

    python bench/flops.py                      # the zoo's ResNet-8 and bench/structured.py's ResNeXt, full data, 1 thread
    python bench/flops.py --models resnet-8    # one of them (the ResNeXt is trained here first, 8 epochs)
    python bench/flops.py --quick              # 10,000 training images, 1 epoch everywhere: a smoke run

For each model, uniform structured pruning at 25, 50 and 75 % of every group's units sets three budgets: the FLOPs
each leaves (torch's FlopCounterMode, one image, ce.flops.count). ce.fit_flops then prunes to at most each budget
with its own fraction per group (the search: one greedy path from the dense model, each step the move of one group
by 1/8 of its units that loses the least KL(dense || pruned) per FLOP saved, measured one-shot with the BatchNorms'
statistics measured again on 1,000 training images; computed once per model and shared by the three budgets). Both
are fine-tuned alike: 2 epochs, Adam, lr 1e-3, seed 0 (`--seeds 3` repeats the fine-tuning of both with seeds 0-2
and reports mean and spread). Accuracy is on all 10,000 test images; every artifact is decoded into a fresh instance
of the model's class and scored again. Latency: median of 20 forward passes of 256 test images, float32, 1 thread,
the models as deployed, each pruned model timed in turns with its dense one (ce.speedup, as the dashboard times
them) after all the training (run nothing else meanwhile). Prints one
table and writes bench/results/flops.csv (flops_<names>.csv for a subset).
"""

import argparse
import os
import statistics
import time

import torch

from report import table, time_rows
import compress_engine as ce
from compress_engine.core import flops, structured
from compress_engine.core.train import fit
from structured import MODELS

SPARSITIES = (0.25, 0.5, 0.75)
CHOICES = ("resnet-8", "resnext")


def fractions(plan_groups):
    """'stem 1/2, conv1 3/8, ...' of a fit_flops plan's groups (first producer of each)."""
    return ", ".join(f"{g['producers'][0]} {g['fraction']:.3g}" for g in plan_groups)


def scored(results, make, data):
    """(accuracies, decoded = reported for all) of fine-tuned results."""
    accs = [r.metrics["accuracy"] for r in results]
    same = all(ce.evaluate_artifact(r.artifact, data, module=make() if make else None)["accuracy"]
               == r.metrics["accuracy"] for r in results)
    return accs, same


def spread(accs):
    mean = statistics.mean(accs)
    if len(accs) == 1:
        return f"{mean:.2%}", mean
    return f"{mean:.2%} ± {(max(accs) - min(accs)) / 2:.2%}", mean


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10,000 training images, 1 epoch of training and fine-tuning")
    ap.add_argument("--models", nargs="+", choices=CHOICES, default=list(CHOICES))
    ap.add_argument("--seeds", type=int, default=1, help="fine-tune each row with seeds 0 .. N-1 (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = ce.load_dataset("fashion-mnist")
    if args.quick:
        data = data.subset(10_000, 10_000)
    example = data.x("test")[:2]
    tune = 1 if args.quick else 2
    seeds = range(args.seeds)
    rows, timed = [], []
    for key in args.models:
        label, make, lr, epochs = MODELS[key]
        torch.manual_seed(0)
        if make is None:
            model, how = ce.load_model(key), "as shipped"
        else:
            model = make()
            t = time.process_time()
            fit(model, data, epochs=1 if args.quick else epochs, lr=lr, seed=0)
            how = f"trained {1 if args.quick else epochs} epochs, {time.process_time() - t:,.0f} CPU s"
        dense = ce.compress(model, ce.Recipe(), data)
        base_flops = flops.count(dense.model, example)
        t = time.process_time()
        path = flops.search(model, data, use_cache=False)
        search_cpu = time.process_time() - t
        print(f"  {label}: searched {len(path['path'])} points in {search_cpu:,.0f} CPU s", flush=True)
        base = {"model": f"{label}, {how}", "budget": "dense", "pruning": "", "fractions per group": "",
                "MFLOPs / image": f"{base_flops / 1e6:.2f}", "FLOPs share": "100%",
                "params": f"{dense.metrics['params']:,}", "one-shot": "", "fine-tuned": f"{dense.metrics['accuracy']:.2%}",
                "loss (points)": "", "ms / 256 images": "", "speed-up": "", "decoded = reported": "", "CPU s": ""}
        rows.append(base)
        timed.append((base, dense.model, base))
        costs = flops.Costs(model, example)
        for s in SPARSITIES:
            share = costs.of_plan(structured.plan(model, s, example)) / costs.dense  # uniform s's FLOPs: the budget
            runs = {}
            for name in ("uniform", "searched"):
                t = time.process_time()
                runs[name] = [ce.fit_flops(model, data, share, finetune_epochs=tune, lr=1e-3, seed=seed,
                                           searched=name == "searched", search_result=path) for seed in seeds]
                runs[name + " cpu"] = (time.process_time() - t) / len(seeds)
            uniform_plan, plan = runs["uniform"][0][1], runs["searched"][0][1]
            one_uniform = ce.compress(model, ce.Recipe.from_dict({**uniform_plan["recipe"], "finetune_epochs": 0}),
                                      data).metrics["accuracy"]
            for name, one_shot, fr, p in (
                    ("uniform", one_uniform, f"all {uniform_plan['groups'][0]['fraction']:g}", uniform_plan),
                    ("searched", plan["one_shot_accuracy"], fractions(plan["groups"]), plan)):
                results, cpu, n_flops = [r for r, _ in runs[name]], runs[name + " cpu"], p["flops"]
                accs, same = scored(results, make, data)
                text, mean = spread(accs)
                r = {"model": "", "budget": f"{share:.1%} (uniform {s:.0%}'s)" if name == "uniform" else "",
                     "pruning": name, "fractions per group": fr,
                     "MFLOPs / image": f"{n_flops / 1e6:.2f}", "FLOPs share": f"{n_flops / base_flops:.1%}",
                     "params": f"{results[0].metrics['params']:,}",
                     "one-shot": f"{one_shot:.2%}" + (" (1,000 training images)" if name == "searched" else ""),
                     "fine-tuned": text, "loss (points)": f"{100 * (dense.metrics['accuracy'] - mean):.2f}",
                     "ms / 256 images": "", "speed-up": "", "decoded = reported": "yes" if same else "no",
                     "CPU s": f"{cpu:,.0f}"}
                rows.append(r)
                timed.append((r, results[0].model, base))
                print(f"  {label}: {s:.0%} {name}: {r['FLOPs share']} of the FLOPs, {text}", flush=True)
        rows.append({**{k: "" for k in base}, "model": f"(the search: {len(path['path'])} points, {search_cpu:,.0f} "
                                                        "CPU s, once per model)"})
    time_rows(timed, data)  # latency last, each model in turns with its dense one, nothing else running
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    name = "flops" + ("" if args.models == list(CHOICES) else "_" + "_".join(args.models))
    name += f"_seeds{args.seeds}" if args.seeds > 1 else ""
    table(f"Structured pruning to a FLOPs budget: uniform against searched fractions{' (--quick)' if args.quick else ''}"
          f" (1 thread; load average {load})", rows, name + "_quick" if args.quick else name)


if __name__ == "__main__":
    main()
