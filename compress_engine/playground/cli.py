"""Command line: the same engine as the dashboard, JSON out.

    python -m compress_engine run --model lenet-300-100 --sparsity 0.9 --clusters 16 --json
    python -m compress_engine sweep --model lenet-300-100 --field sparsity --values 0,0.5,0.9 --clusters 16
    python -m compress_engine train lenet-300-100
    python -m compress_engine eval artifact.cpg

Every Recipe field is a flag (--prune-scope global, --huffman true, --bits none, ...). Bad input (a flag,
a model or dataset name, a file) exits with status 2 and one line on stderr naming the flag, the value
and what is allowed: never a traceback.
"""

import argparse
import json
import os
import stat
import sys
from dataclasses import fields
from pathlib import Path

from . import zoo as models
from ..core.data import load_dataset
from ..core.errors import ArtifactError, CompressError, ModelError, RecipeError
from ..core.recipe import OPTIONAL, Recipe, check

MAX_FLAG_CHARS = 200       # a flag's value; every real one is a few characters
MAX_SWEEP_VALUES = 100     # each value is a whole compress() run
MAX_ARTIFACT_MB = 256      # an artifact file to eval (the largest real one is ~22 MB)
FIELDS = {f.name for f in fields(Recipe)}


class Parser(argparse.ArgumentParser):
    """argparse that raises RecipeError (one line, caught in main) instead of printing usage and exiting."""

    def error(self, message):
        raise RecipeError(f"{message} (see `{self.prog} --help`)")


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


def flag(name):
    return "--" + name.replace("_", "-")


def short(text, n=80):
    """repr() of user text, cut to about n characters (messages stay one readable line)."""
    text = str(text)
    return repr(text if len(text) <= n else text[:n] + "…")


def add_recipe_flags(p):
    for f in fields(Recipe):
        p.add_argument(flag(f.name), dest=f.name, default=argparse.SUPPRESS, metavar="V",
                       help=f"recipe field {f.name} (default {f.default})")


def field_value(name, text, where=None):
    """One recipe field's value from its command-line text, checked; RecipeError names the flag and the value."""
    where = where or flag(name)
    if len(text) > MAX_FLAG_CHARS:
        raise RecipeError(f"{where}: the value is {len(text):,} characters long; a {name} value is a short "
                          f"number or word")
    value = parse_value(text)
    if value is None and name in OPTIONAL:
        return None
    try:
        return check(name, value)
    except RecipeError as e:  # "sparsity=1.5: must be between 0.0 and 0.999" -> "--sparsity='1.5': must be ..."
        raise RecipeError(f"{where}={short(text)}: {str(e).split(': ', 1)[-1]}") from None


def recipe_from(args):
    return Recipe.from_dict({name: field_value(name, getattr(args, name)) for name in FIELDS if hasattr(args, name)})


def sweep_values(recipe, field, text):
    """--field/--values -> the checked list of values; each one must make a valid recipe with the other flags."""
    if field not in FIELDS:
        raise RecipeError(f"--field {short(field)} is not a recipe field; choose one of {', '.join(sorted(FIELDS))}")
    if len(text) > MAX_FLAG_CHARS * MAX_SWEEP_VALUES:
        raise RecipeError(f"--values is {len(text):,} characters long; give at most {MAX_SWEEP_VALUES} short values")
    items = text.split(",")
    if not text.strip() or not any(i.strip() for i in items):
        raise RecipeError("--values is empty: give comma-separated values such as 0,0.5,0.9")
    if len(items) > MAX_SWEEP_VALUES:
        raise RecipeError(f"--values has {len(items):,} values; a sweep runs at most {MAX_SWEEP_VALUES} "
                          "(each value is one compression run)")
    values = []
    for i, item in enumerate(items, 1):
        where = f"--values item {i} of {len(items)}, {field}"
        if not item.strip():
            raise RecipeError(f"--values item {i} of {len(items)} is empty: give comma-separated values such as "
                              "0,0.5,0.9")
        value = field_value(field, item.strip(), where)
        try:
            recipe.replace(**{field: value})
        except RecipeError as e:
            raise RecipeError(f"{where}={short(item.strip())}: {e}") from None
        values.append(value)
    return values


def read_artifact(path):
    """The bytes of an artifact file, refusing anything that cannot be one before reading much of it."""
    text = str(path)
    if "\0" in text:
        raise ArtifactError(f"artifact path {short(text, 200)} contains a NUL byte; give the path of a .cpg file")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ArtifactError(f"artifact file {short(text, 300)} does not exist") from None
    except OSError as e:
        raise ArtifactError(f"cannot read artifact file {short(text, 300)}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ArtifactError(f"{short(text, 300)} is a folder, not an artifact file: give the path of a .cpg file")
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{short(text, 300)} is not a regular file (a device, pipe or socket): give a .cpg file")
    limit = MAX_ARTIFACT_MB << 20
    if st.st_size > limit:
        raise ArtifactError(f"{short(text, 300)} is {st.st_size / 2**20:,.1f} MB; artifacts are at most "
                            f"{MAX_ARTIFACT_MB} MB")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ArtifactError(f"cannot read artifact file {short(text, 300)}: {e.strerror or e}") from None
    if len(data) > limit:  # it grew after the stat
        raise ArtifactError(f"{short(text, 300)} is more than {MAX_ARTIFACT_MB} MB; artifacts are at most that")
    return data


def check_out(path):
    """--out must name a file we can create or overwrite, checked before any work is done."""
    text = str(path)
    if "\0" in text:
        raise RecipeError(f"--out {short(text, 200)} contains a NUL byte; give a file path such as model.cpg")
    if path.is_dir():
        raise RecipeError(f"--out {short(text, 300)} is a folder; give a file path such as {path / 'model.cpg'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise RecipeError(f"--out {short(text, 300)}: folder {short(parent, 300)} does not exist; create it or "
                          "choose another")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise RecipeError(f"--out {short(text, 300)} is not writable; choose another path")


def summary(result):
    m = dict(result.metrics)
    return {"recipe": result.recipe.to_dict(), "metrics": m, "timings": result.timings}


def parser():
    ap = Parser(prog="python -m compress_engine", description=__doc__.split("\n")[0])
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
    return ap


def check_model(name):
    if name not in models.SAMPLES:
        raise ModelError(f"--model {short(name)}: unknown model; choose one of {', '.join(models.SAMPLES)}")
    return name


def one_line(message):
    """Messages may quote user text: keep the report on one line whatever it holds."""
    return " ".join(str(message).split())


def main(argv=None):
    """Run the command line; returns the exit status (0 ok, 2 bad input, 1 could not finish, 130 interrupted)."""
    try:
        out = run(parser().parse_args(argv))
    except CompressError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. the disk filled while writing --out or a checkpoint
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(out, indent=2))
    return 0


def run(args):
    """Check every argument (cheap checks first), then do the work; returns what to print as JSON."""
    from ..core.pipeline import compress, evaluate_artifact, sweep
    if args.cmd == "train":
        from .zoo import train_sample

        def show(step, total, loss, acc):
            if acc is not None:
                print(f"step {step}/{total} loss {loss:.4f} test accuracy {acc:.4f}", file=sys.stderr)
        return train_sample(args.name, load_dataset(args.data), progress=show)
    if args.cmd == "eval":
        artifact = read_artifact(args.artifact)
        data = load_dataset(args.data)
        try:
            res = evaluate_artifact(artifact, data)
        except (ArtifactError, ModelError) as e:
            raise ArtifactError(f"{short(args.artifact, 300)} is not a usable artifact: {e}") from None
        return {k: v for k, v in res.items() if k != "model"}
    check_model(args.model)
    recipe = recipe_from(args)
    if args.cmd == "run":
        if args.out is not None:
            check_out(args.out)
        result = compress(models.load_model(args.model), recipe, load_dataset(args.data),
                          measure_latency=args.latency)
        if args.out is not None:
            args.out.write_bytes(result.artifact)
        return summary(result)
    values = sweep_values(recipe, args.field, args.values)
    return sweep(models.load_model(args.model), recipe, load_dataset(args.data), args.field, values)


if __name__ == "__main__":
    sys.exit(main())
