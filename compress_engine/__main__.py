"""Command line: the same engine as the dashboard, JSON out.

    python -m compress_engine run --model lenet-300-100 --sparsity 0.9 --clusters 16 --json
    python -m compress_engine sweep --model lenet-300-100 --field sparsity --values 0,0.5,0.9 --clusters 16
    python -m compress_engine train lenet-300-100
    python -m compress_engine eval artifact.cpg

Every Recipe field is a flag (--prune-scope global, --huffman true, --bits none, ...). Bad values exit
with status 2 and one line naming the field, the value and the allowed range.
"""

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from . import models
from .data import load_dataset
from .errors import CompressError
from .recipe import Recipe


def parse_value(text):
    """'none' -> None, 'true'/'false' -> bool, numbers -> int/float, anything else stays a string."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def add_recipe_flags(p):
    for f in fields(Recipe):
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=parse_value, default=argparse.SUPPRESS,
                       metavar="V", help=f"recipe field {f.name} (default {f.default})")


def recipe_from(args):
    return Recipe.from_dict({f.name: getattr(args, f.name) for f in fields(Recipe) if hasattr(args, f.name)})


def summary(result):
    m = dict(result.metrics)
    return {"recipe": result.recipe.to_dict(), "metrics": m, "timings": result.timings}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m compress_engine", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="compress one model with one recipe; print metrics as JSON")
    sw = sub.add_parser("sweep", help="run one recipe field over several values; print a JSON list")
    for p in (run, sw):
        p.add_argument("--model", default="lenet-300-100", help=f"one of {', '.join(models.SAMPLES)}")
        p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or 'idx:/folder'")
        add_recipe_flags(p)
    run.add_argument("--json", action="store_true", help="print JSON (the default; kept for scripts)")
    run.add_argument("--out", type=Path, help="also write the artifact bytes here")
    run.add_argument("--latency", action="store_true", help="also time a forward pass")
    sw.add_argument("--field", required=True, help="the recipe field to vary, e.g. sparsity")
    sw.add_argument("--values", required=True, help="comma-separated values, e.g. 0,0.5,0.9")
    tr = sub.add_parser("train", help="retrain a sample model's checkpoint from scratch (seeded)")
    tr.add_argument("name", choices=list(models.SAMPLES))
    tr.add_argument("--data", default="fashion-mnist")
    ev = sub.add_parser("eval", help="decode an artifact file and score it on the test set")
    ev.add_argument("artifact", type=Path)
    ev.add_argument("--data", default="fashion-mnist")
    args = ap.parse_args(argv)

    from .pipeline import compress, evaluate_artifact, sweep
    try:
        if args.cmd == "train":
            from .train import train_sample

            def show(step, total, loss, acc):
                if acc is not None:
                    print(f"step {step}/{total} loss {loss:.4f} test accuracy {acc:.4f}", file=sys.stderr)
            out = train_sample(args.name, load_dataset(args.data), progress=show)
        elif args.cmd == "eval":
            if not args.artifact.is_file():
                raise CompressError(f"artifact file {args.artifact} does not exist")
            res = evaluate_artifact(args.artifact.read_bytes(), load_dataset(args.data))
            out = {k: v for k, v in res.items() if k != "model"}
        else:
            recipe = recipe_from(args)
            data, model = load_dataset(args.data), models.load_model(args.model)
            if args.cmd == "run":
                result = compress(model, recipe, data, measure_latency=args.latency)
                if args.out:
                    args.out.write_bytes(result.artifact)
                out = summary(result)
            else:
                if args.field not in {f.name for f in fields(Recipe)}:
                    raise CompressError(f"--field {args.field!r} is not a recipe field; "
                                        f"choose one of {', '.join(f.name for f in fields(Recipe))}")
                values = [parse_value(v) for v in args.values.split(",") if v.strip()]
                if not values:
                    raise CompressError("--values is empty: give comma-separated values such as 0,0.5,0.9")
                out = sweep(model, recipe, data, args.field, values)
    except CompressError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
