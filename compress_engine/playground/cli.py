"""Command line: the same engine as the dashboard, JSON out.

    compression-playground app                 # the dashboard (from a checkout; see `app`)
    compression-playground run --model lenet-300-100 --sparsity 0.9 --clusters 16 --json
    compression-playground run --model my_models.py:make_model --weights mine.safetensors --data idx:/folder
    compression-playground sweep --model lenet-300-100 --field sparsity --values 0,0.5,0.9 --clusters 16
    compression-playground run --model lenet-5 --budget-kb 10 --finetune-epochs 4 --out small.cpg
    compression-playground sweep ... --workers 2 --store    # 2 points at a time on Ray; each saved as it finishes
    compression-playground sweep --field sparsity --values 0.5,0.9 --field bits --values 4,8   # a grid: 4 points
    compression-playground train lenet-300-100
    compression-playground scans lenet-5 resnet-8        # the Sensitivity page's scans, shipped beside them
    compression-playground eval artifact.cpg [--model my_models.py:make_model]
    compression-playground deploy artifact.cpg [--out-dir DIR]   # its float and int8 safetensors files

`python -m compress_engine ...` is the same program. `--model` is a sample model's name or
`path/to/file.py:callable`, a function (or class) of the user's own file that returns an nn.Module;
`--weights` loads a state dict into it (.safetensors, or a torch.save file read with
weights_only=True) and must match it exactly. Running the user's own file is this command line's
job alone: the dashboard's upload never runs code.

Every Recipe field is a flag (--prune-scope global, --huffman true, --bits none, ...). Bad input (a flag,
a model or dataset name, a file) exits with status 2 and one line on stderr naming the flag, the value
and what is allowed: never a traceback.
"""

import argparse
import atexit
import contextlib
import importlib.util
import inspect
import json
import math
import os
import re
import stat
import struct
import sys
import time
import warnings
from dataclasses import fields
from pathlib import Path

from . import zoo as models
from .zoo import few
from .cards import DEFAULT_DATA
from .launch import one_line, start_app
from .store import MAX_ARTIFACT  # an artifact file to eval: the run store's limit, one definition
from .units import CONVENTION, mb
from ..core import budget
from ..core.encode import MAGIC, decode_with_meta
from ..core.errors import ArtifactError, CompressError, DatasetError, ModelError, RecipeError
from ..core.recipe import OPTIONAL, Recipe, check
from ..core.flops import fit_flops

MAX_FLAG_CHARS = 200       # a flag's value; every real one is a few characters
MAX_SWEEP_VALUES = 100     # each value is a whole compress() run
FIELDS = {f.name for f in fields(Recipe)}
FLOPS_DEFAULTS = {n: p.default for n, p in inspect.signature(fit_flops).parameters.items()}  # fit_flops's own


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


GRID = "a grid gives each field its own --values: --field sparsity --values 0.5,0.9 --field bits --values 4,8"


class Pairs(argparse.Action):
    """--field F --values V, once for a sweep, once a field for a grid: kept in order as [field, values] pairs in
    args.field (argparse kept a repeated flag's last: a grid asked for swept its last field alone). Each --values
    follows its own --field."""

    def __call__(self, parser, namespace, values, option_string=None):
        pairs = namespace.field if isinstance(namespace.field, list) else []
        if option_string == "--field":
            if pairs and pairs[-1][1] is None:
                raise RecipeError(f"--field {pairs[-1][0]} has no --values before --field {values}: {GRID}")
            pairs.append([values, None])
        elif not pairs:  # refused once parsed (sweep_grid): with no --field at all, argparse says it is required
            pairs.append([None, values])
        elif pairs[-1][1] is not None:
            raise RecipeError(f"--values is given twice for --field {pairs[-1][0]} ({short(pairs[-1][1], 40)}, "
                              f"{short(values, 40)}): give all of one field's values in one --values; {GRID}")
        else:
            pairs[-1][1] = values
        namespace.field, namespace.values = pairs, [p[1] for p in pairs]


def sweep_grid(recipe, pairs, given=()):
    """The --field/--values pairs -> {field: checked values}, in order (a grid when more than one). A field given
    twice, one with no --values, a swept field's own flag, a value or a combination the recipe refuses, more points
    than a sweep runs: RecipeError, before any work."""
    from . import sweeps
    if pairs[0][0] is None:
        raise RecipeError(f"--values {short(pairs[0][1], 40)} comes before any --field: {GRID}")
    if pairs[-1][1] is None:
        raise RecipeError(f"--field {pairs[-1][0]} has no --values: {GRID}")
    grid = {}
    for field, text in pairs:
        if field in grid:
            raise RecipeError(f"--field {short(field)} is given twice: a grid varies each field once; give all its "
                              "values in one --values")
        grid[field] = sweep_values(recipe, field, text, given, alone=len(pairs) == 1)
    if len(grid) > 1:
        sweeps.plan(recipe, grid)  # the product's size, and each combination as a recipe (bits and clusters: not both)
    return grid


def sweep_values(recipe, field, text, given=(), alone=True):
    """--field/--values -> the checked list of values; each one must make a valid recipe with the other flags
    (`alone`: one field swept; a grid's values are checked in their combinations, sweep_grid).
    `given`: the recipe fields given as flags; the swept field's own flag is refused (the sweep replaced its value)."""
    if field not in FIELDS:
        raise RecipeError(f"--field {short(field)} is not a recipe field; choose one of {', '.join(sorted(FIELDS))}")
    if field in given:  # `--field bits --values 4,8 --bits 2`: --bits 2 was ignored without a word
        raise RecipeError(f"{flag(field)} and --field {field} are both given: the sweep sets {field} to each of "
                          f"--values, so {flag(field)} would be ignored; leave it out")
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
            if alone:
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
    limit = MAX_ARTIFACT
    if st.st_size > limit:
        raise ArtifactError(f"{short(text, 300)} is {mb(st.st_size)}; artifacts are at most {mb(limit)} "
                            f"({limit:,} bytes)")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ArtifactError(f"cannot read artifact file {short(text, 300)}: {e.strerror or e}") from None
    if len(data) > limit:  # it grew after the stat
        raise ArtifactError(f"{short(text, 300)} is more than {mb(limit)} ({limit:,} bytes); artifacts are at most "
                            "that")
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
    if path.exists():  # an earlier artifact is replaced (a rerun); anything else is someone's file: --out mynet.py
        try:           # replaced the user's model source (or their weights, their data) with artifact bytes
            with open(path, "rb") as f:
                head = f.read(len(MAGIC))
        except OSError as e:
            raise RecipeError(f"--out {short(text, 300)} cannot be read to check what it is ({e.strerror or e}); "
                              "choose another path") from None
        if head != MAGIC:
            raise RecipeError(f"--out {short(text, 300)} is an existing file that is not an artifact (.cpg): it is "
                              "left as it is; choose a new path, or delete the file first if it may go")


WRITTEN = []  # the files write_out wrote in this command: what a Ctrl-C says is there (interrupted_line)


def write_out(path, data):
    """Write `data` to `path` whole or not at all: into a temporary file beside it, then renamed over it, so a
    Ctrl-C or a full disk mid-write leaves the earlier file (or none), never half an artifact."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    WRITTEN.append(path)


def check_out_dir(path):
    """train's --out-dir must be a folder we can write (made if missing), checked before training."""
    text = short(str(path), 300)
    if "\0" in str(path):
        raise RecipeError(f"--out-dir {short(str(path), 200)} contains a NUL byte; give a folder")
    if path.exists() and not path.is_dir():
        raise RecipeError(f"--out-dir {text} is a file; give a folder (it is made if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RecipeError(f"--out-dir {text} cannot be made: {e.strerror or e}; choose another folder") from None
    if not os.access(path, os.W_OK):
        raise RecipeError(f"--out-dir {text} is not writable; choose another folder")


def deploy(args):
    """`deploy`: the artifact's two deployment files (core.deploy.deploy_files, the Export page's downloads) written
    beside it or in --out-dir, under the Export page's names; an existing file of those names is refused (it may be
    the user's own checkpoint, mine.safetensors beside mine.cpg) unless --force. Returns what was written, as JSON."""
    from ..core.deploy import deploy_files
    artifact = read_artifact(args.artifact)
    folder = args.out_dir if args.out_dir is not None else args.artifact.parent  # Path("a.cpg").parent is "."
    stem = args.artifact.stem
    paths = {"weights": folder / f"{stem}.safetensors", "int8": folder / f"{stem}-int8.safetensors"}
    if not args.force:
        there = [str(p) for p in paths.values() if os.path.lexists(p)]
        if there:
            raise RecipeError(f"deploy would replace {', '.join(short(p, 300) for p in there)}: give --out-dir DIR to "
                              "write them elsewhere, or --force to replace them")
    try:
        weights, int8, why_not = deploy_files(artifact)
    except ArtifactError as e:
        raise ArtifactError(f"{short(args.artifact, 300)} is not a usable artifact: {e}") from None
    if args.out_dir is not None:
        check_out_dir(args.out_dir)
    elif not os.access(folder, os.W_OK):
        raise RecipeError(f"folder {short(folder, 300)} is not writable; give --out-dir DIR")
    write_out(paths["weights"], weights)
    out = {"weights": str(paths["weights"]), "weights_bytes": len(weights), "int8": None, "int8_bytes": None}
    if int8 is None:
        out["no_int8"] = why_not
        print(f"no int8 file: {one_line(why_not)}", file=sys.stderr)
    else:
        write_out(paths["int8"], int8)
        out.update(int8=str(paths["int8"]), int8_bytes=len(int8))
    return out


def summary(result):
    m = dict(result.metrics)
    return {"recipe": result.recipe.to_dict(), "metrics": m, "timings": result.timings}


# --- the user's own model and weights (command line only: the dashboard never runs uploaded code) ----------

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
MODEL_HELP = (f"a sample model ({', '.join(models.SAMPLES)}) or path/to/file.py:callable, a function or class "
              "of your own file that returns a torch.nn.Module")
DATA_HELP = ("any name compress_engine.load_dataset accepts, e.g. 'fashion-mnist', 'digits', 'idx:/folder', "
             "'npz:/file.npz' or 'images:/folder' (train/<class>/*.png and test/<class>/*.png, or <class>/*.png "
             "with a fifth held out for testing; 'images:/folder?size=64' loads images of any sizes at 64×64; "
             "'images:/folder?labels=labels.csv' reads each image's labels from a CSV) or "
             "'csv:/file.csv' (a row per sample: numeric features and a label column; '?label=species&drop=id')")


def model_ref(text):
    """--model's value -> ("sample", name) or ("file", path, attribute); checked without running anything."""
    if text in models.SAMPLES:
        return ("sample", text)
    where = f"--model {short(text, 300)}"
    if "\0" in text:
        raise ModelError(f"{where} contains a NUL byte; give a sample model or path/to/file.py:callable")
    path, sep, attr = text.rpartition(":")
    if not sep and text.endswith(".py"):
        raise ModelError(f"{where}: name the callable in that file after a colon, e.g. {short(text + ':make_model')}")
    if not sep or not path.endswith(".py"):
        raise ModelError(f"{where}: unknown model; choose one of {', '.join(models.SAMPLES)}, or give "
                         "path/to/file.py:callable (a function or class in your file that returns an nn.Module)")
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", attr):
        raise ModelError(f"{where}: {short(attr)} is not a Python name; write path/to/file.py:make_model")
    file = Path(path).expanduser()
    if not file.is_file():
        why = "is not a regular file" if file.exists() else "does not exist"
        raise ModelError(f"{where}: {short(path, 300)} {why}; give your .py file, e.g. my_models.py:make_model")
    return ("file", file, attr)


def import_file(file, where):
    """Run the user's .py file as a module of its own (its folder on sys.path, for its own imports)."""
    name = "_compression_playground_user_" + re.sub(r"\W", "_", file.stem)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    sys.path.insert(0, str(file.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:
        del sys.modules[name]
        raise ModelError(f"{where}: running {file.name} failed: {type(e).__name__}: {e}") from None
    return module


def build_model(ref, text):
    """The nn.Module --model names: a trained sample model, or what the user's callable returns."""
    import torch
    if ref[0] == "sample":
        return models.load_model(ref[1])
    _, file, attr = ref
    where = f"--model {short(text, 300)}"
    module = import_file(file, where)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                     and getattr(v, "__module__", None) == module.__name__]
            raise ModelError(f"{where}: {file.name} has no {short(attr)}"
                             + (f"; it defines {few(names, 8)}" if names else ""))
        obj = getattr(obj, part)
    if isinstance(obj, torch.nn.Module):
        model = obj  # a module built at the file's top level
    elif callable(obj):
        try:
            model = obj()
        except (Exception, SystemExit) as e:
            raise ModelError(f"{where}: {attr}() raised {type(e).__name__}: {e}") from None
    else:
        raise ModelError(f"{where}: {attr} is not callable (it is of type {type(obj).__name__}); give a function "
                         "or class that returns an nn.Module")
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{where}: {attr}() returned {type(model).__name__!r}, not a torch.nn.Module")
    return model


def check_weights(path):
    """--weights must be an existing .safetensors / .pt / .pth / .bin file (checked before any work)."""
    text = str(path)
    if "\0" in text:
        raise ModelError(f"--weights {short(text, 200)} contains a NUL byte; give a .safetensors or .pt file")
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModelError(f"--weights {short(text, 300)}: weight files must end in {', '.join(WEIGHT_SUFFIXES)} "
                         "(a state dict in safetensors or torch.save format)")
    if not path.is_file():
        why = "is not a regular file" if path.exists() else "does not exist"
        raise ModelError(f"--weights {short(text, 300)} {why}")


def read_state_dict(path, model_names=None):
    """{name: tensor} from --weights: read as the sidebar reads an upload (zoo.read_state: the reader chosen by the
    file's first bytes, safetensors or torch.load(weights_only=True) after checking its zip entries, so no code runs),
    without the upload's size caps. A prefix before every name ('module.', Lightning's 'model.', ...) is dropped when
    the names left match more of `model_names` (the --model's state_dict names)."""
    where = f"--weights {short(path, 300)}"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"{where} cannot be read ({e.strerror or e}); give a file you can read") from None
    state = models.read_state(data, where, path.suffix.lower(), caps=models.OWN_FILE_CAPS)
    return state if model_names is None else models.strip_prefix_for(state, model_names)


def load_strict(model, state, where, what):
    """model.load_state_dict(state, strict=True), with one line naming missing, unexpected and mis-shaped tensors."""
    problems = models.state_mismatch(model, state)
    if problems:
        raise ModelError(f"{where} does not fit {what}: tensors {problems}")
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ModelError(f"{where} does not fit {what}: {(str(e).splitlines() or [''])[0][:200]}") from None
    return model


# --- the program --------------------------------------------------------------------------------------------

def version_line():
    """'compression-playground 0.1.0 (torch 2.13.0+cpu)', from the installed distributions' metadata (no import of
    torch); a checkout run without `pip install` says so."""
    from importlib import metadata

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"
    return f"compression-playground {version('compression-playground')} (torch {version('torch')})"


def parser(prog="python -m compress_engine"):
    ap = Parser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--version", action="version", version=version_line(),
                    help="print this package's version and torch's, and exit")
    sub = ap.add_subparsers(dest="cmd", required=True)
    app_help = ("start the dashboard (needs a source checkout and streamlit); further arguments go to "
                "`streamlit run`, e.g. --server.port 8502")
    sub.add_parser("app", help=app_help, description=app_help)
    run = sub.add_parser("run", help="compress one model with one recipe; print metrics as JSON")
    sw = sub.add_parser("sweep", help="run one recipe field over several values (or a grid of several fields: "
                        "--field/--values again); print a JSON list")
    ins = sub.add_parser("inspect", help="what run would compress, carry as float32 and structurally prune in "
                         "--model, before any work (JSON)")
    for p in (run, sw, ins):
        p.add_argument("--model", default="lenet-300-100", help=MODEL_HELP)
        p.add_argument("--weights", type=Path, help="a state dict for --model (.safetensors, or torch.save's "
                       ".pt read with weights_only=True); must match the model exactly")
        p.add_argument("--data", default=DEFAULT_DATA, help=DATA_HELP)
    for p in (run, sw):
        add_recipe_flags(p)
    run.add_argument("--json", action="store_true", help="print JSON (the default; kept for scripts)")
    run.add_argument("--out", type=Path, help="also write the artifact bytes here")
    run.add_argument("--latency", action="store_true",
                     help="also time a forward pass over 256 test images (a model made smaller by structured "
                          "pruning, --flops or distillation: in turns with the dense one, with the speed-up)")
    run.add_argument("--budget-kb", dest="budget_kb", metavar="KB",
                     help=f"fit the artifact in this many KB ({CONVENTION}): the engine picks each layer's "
                          "sparsity and cluster count from a sensitivity scan, then fine-tunes "
                          f"(--finetune-epochs per stage, default {budget.EPOCHS}; --lr default {budget.LR:g}; "
                          f"--finetune-kd default {budget.KD:g}, none for labels only; --bias-bits default "
                          f"{budget.BIAS_BITS}; --seed)")
    run.add_argument("--flops", metavar="SHARE",
                     help="prune whole units (structured) until the model needs at most this share of its FLOPs "
                          "(0.25 = a quarter): the same fraction of every group's units, the smallest that fits, "
                          f"then fine-tuning (--finetune-epochs, default {FLOPS_DEFAULTS['finetune_epochs']}; --lr default "
                          f"{FLOPS_DEFAULTS['lr']:g}; --finetune-kd; --seed)")
    sw.add_argument("--field", required=True, action=Pairs, help="the recipe field to vary, e.g. sparsity; again, "
                    "each with its --values, for a grid (every combination)")
    sw.add_argument("--values", required=True, action=Pairs, help="comma-separated values of the --field before "
                    "it, e.g. 0,0.5,0.9")
    sw.add_argument("--workers", type=int, metavar="N", help="run N points at a time on a local Ray runtime "
                    "(pip install 'compression-playground[ray]'); the rows are the same as without it")
    sw.add_argument("--ray-address", metavar="ADDR", help="run the points on an existing Ray cluster: 'auto' on "
                    "one of its machines, or HOST:6379 (see the README)")
    sw.add_argument("--threads", type=int, default=1, metavar="T", help="torch threads of each point, in every "
                    "backend (default 1: rows are bit-identical whatever runs them)")
    sw.add_argument("--store", nargs="?", const="", metavar="PATH", help="save each point in the run store as it "
                    "finishes (PATH, else $COMPRESS_STORE or the default store); a rerun skips the stored points")
    tr = sub.add_parser("train", help="retrain a sample model's checkpoint from scratch (seeded)")
    tr.add_argument("name", choices=list(models.SAMPLES))
    tr.add_argument("--data", default=DEFAULT_DATA, help=DATA_HELP)
    tr.add_argument("--out-dir", type=Path, metavar="DIR", help="write the checkpoint and card here (use it with "
                    "--model NAME --weights DIR/NAME.safetensors) instead of replacing the shipped ones, which only "
                    "a checkout's sample_models/ may be")
    sc = sub.add_parser("scans", help="compute the sensitivity scans shipped beside sample models that are "
                                      "missing or out of date (of other weights or scan format; the rest are kept; "
                                      "train does it)")
    sc.add_argument("names", nargs="+", choices=list(models.SAMPLES), metavar="NAME")
    sc.add_argument("--data", default=DEFAULT_DATA, help=DATA_HELP)
    ev = sub.add_parser("eval", help="decode an artifact file and score it on the test set")
    ev.add_argument("artifact", type=Path)
    ev.add_argument("--model", help="decode into this module instead (strict load): needed for an artifact "
                    "of your own model, whose architecture only your code knows; " + MODEL_HELP)
    ev.add_argument("--data", default=DEFAULT_DATA, help=DATA_HELP)
    dp = sub.add_parser("deploy", help="write an artifact's deployment files: its weights as float safetensors "
                        "(STEM.safetensors) and as int8 / uint8 codes (STEM-int8.safetensors), as Export offers")
    dp.add_argument("artifact", type=Path)
    dp.add_argument("--out-dir", type=Path, metavar="DIR", help="write them here (made if missing); default: beside "
                    "the artifact")
    dp.add_argument("--force", action="store_true", help="replace files of those names that are there already")
    return ap


def warning_line(message, category, filename, lineno, file=None, line=None):
    """The engine's warnings as one line each, like its errors (not Python's file:line: Category: source line)."""
    print(f"warning: {one_line(message)}", file=sys.stderr)


def leave_past_ray_join(code):
    """`code`, and if a ray.init the sweep gave up on (a --ray-address that did not answer in time, or Ctrl-C while
    joining) is still trying in its thread, the process leaves with `code` at exit without tearing the interpreter
    down under it: that teardown aborted the process (std::bad_alloc, status -6 instead of 130 or 2) after its message
    was printed, about 1 run in 8 under load. Only while that thread lives (a caller in the same process whose join
    has ended exits as usual)."""
    sw = sys.modules.get("compress_engine.playground.sweeps")
    if sw is not None and sw.join_given_up():
        def leave():
            if sw.join_given_up():
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        atexit.register(leave)  # after Ray's own exit hooks were registered, so before they run
    return code


def main(argv=None):
    """Run the command line; returns the exit status (0 ok, 2 bad input, 1 could not finish, 130 interrupted)."""
    with warnings.catch_warnings():  # restores the process's own warning display afterwards
        warnings.showwarning = warning_line
        # compress()'s CollapseWarning (or a Ray worker's, warned again as a UserWarning): warn_collapse says it, once
        warnings.filterwarnings("ignore", message="the compressed model has collapsed")
        return _main(argv)


NEGATIVE = re.compile(r"-\.?\d")  # a value such as -0.1,0.5 or -.5 (no option starts with a digit)


def join_negative(argv):
    """'--values -0.1,0.5' -> '--values=-0.1,0.5': argparse takes '-0.1' alone for a number but '-0.1,0.5' for an
    option, and said 'argument --values: expected one argument'. (Not for `app`, whose arguments go to streamlit.)"""
    if argv[:1] == ["app"]:
        return argv
    out = []
    for item in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and out[-1] != "--" and NEGATIVE.match(item):
            out[-1] += "=" + item
        else:
            out.append(item)
    return out


def _main(argv):
    prog = "compression-playground" if Path(sys.argv[0]).name == "compression-playground" else None
    args, started = None, time.time()
    WRITTEN.clear()
    try:
        ap = parser(prog or "python -m compress_engine")
        args, extra = ap.parse_known_args(join_negative(sys.argv[1:] if argv is None else list(argv)))
        if args.cmd == "app":
            return start_app(extra)  # serves until stopped
        if extra:
            ap.error(f"unrecognized arguments: {' '.join(extra)}")
        out = run(args)
    except CompressError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return leave_past_ray_join(2)
    except OSError as e:  # e.g. the disk filled while writing --out or a checkpoint
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        rows = getattr(e, "rows", None)  # a sweep's (sweeps.Interrupted): the points finished, as a full run prints
        if rows is None:
            print(f"error: interrupted{interrupted_line(args, started)}", file=sys.stderr)
        elif print_json(rows):
            print(f"interrupted: {len(rows)} of {e.total} points finished; only their rows are printed"
                  f"{kept_line(args, e)}", file=sys.stderr)
        return leave_past_ray_join(130)
    if not print_json(out):
        return 1
    if (line := over_budget_line(args, out)) is not None:
        print(line, file=sys.stderr)
        return 1
    if isinstance(out, list) and any("error" in row for row in out):  # a sweep with failed points
        print(f"error: {sum('error' in row for row in out)} of {len(out)} sweep points failed (see their \"error\")",
              file=sys.stderr)
        return 1
    return 0


def kept_line(args, e):
    """What an interrupted sweep (`e`, sweeps.Interrupted) left in the store with --store: its finished points, and
    where (e.store, when the sweep had opened it); '' without --store."""
    if getattr(args, "store", None) is None:
        return ""
    where = f" in {short(e.store, 300)}" if getattr(e, "store", None) else ""
    return f"; --store keeps them{where} and a rerun skips them" if e.rows else f"; nothing was stored{where}"


def interrupted_line(args, started):
    """What a Ctrl-C (at `started` or later) leaves of the command's files, after "error: interrupted": whether
    run's --out or deploy's files were written (write_out: whole or not at all), or which files train and scans
    wrote (changed since `started`), so the user knows what is there without looking; that eval and inspect write
    nothing, and what the dashboard (app) keeps. '' when the command is not known (interrupted while its arguments
    were read)."""
    cmd = getattr(args, "cmd", None)
    if cmd == "run" and args.out is not None:
        return (f"; the artifact was written to {short(args.out, 300)}" if WRITTEN else
                f"; nothing was written to {short(args.out, 300)}"
                + (" (the earlier file there is unchanged)" if os.path.lexists(args.out) else ""))
    if cmd == "run":
        return "; no artifact was written (give --out FILE to keep one)"
    if cmd == "deploy":
        if not WRITTEN:
            return "; nothing was written"
        return (f"; only {', '.join(short(p, 300) for p in WRITTEN)} was written: run deploy again with --force to "
                "write them all")
    if cmd in ("train", "scans"):
        from .cards import SAMPLE_DIR
        folders = ([args.out_dir or SAMPLE_DIR] if cmd == "train" else
                   [SAMPLE_DIR / "scans" / name for name in args.names])
        new = []
        for folder in folders:
            with contextlib.suppress(OSError):
                new += [p for p in sorted(Path(folder).rglob("*")) if not p.name.startswith(".") and p.is_file()
                        and p.stat().st_mtime >= started]
        if not new:
            return f"; nothing was written to {short(', '.join(map(str, folders)), 300)}"
        return f"; written before it: {short(', '.join(map(str, new)), 600)}"
    if cmd in ("eval", "inspect"):
        return f"; {cmd} only reads its files: nothing was written"
    if cmd == "app":
        return "; the dashboard stopped: its saved runs and finished trained results stay on disk"
    return ""


def float32_short(o):
    """`o` with every float that is a float32 value written as the shortest decimal giving that float32: accuracies
    printed as 0.8981999754905701, 0.8982 as float32. Other floats, and what is stored, are left as they are."""
    if isinstance(o, dict):
        return {k: float32_short(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [float32_short(v) for v in o]
    if type(o) is float and math.isfinite(o):
        try:
            f32 = struct.pack("<f", o)
        except OverflowError:  # beyond float32's range: not one
            return o
        if struct.unpack("<f", f32)[0] == o:
            for digits in range(1, 10):  # 9 significant digits tell every float32 apart
                short = float(f"{o:.{digits}g}")
                with contextlib.suppress(OverflowError):  # rounded past float32's largest
                    if struct.pack("<f", short) == f32:
                        return short
    return o


def print_json(out):
    """Print `out` as JSON on stdout (float32 values short: float32_short); False if the reader stopped early
    (| head): no traceback (Python's docs' recipe)."""
    try:
        print(json.dumps(float32_short(out), indent=2, ensure_ascii=False), flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False
    return True


def run(args):
    """Check every argument (cheap checks first), then do the work; returns what to print as JSON."""
    import compress_engine as ce
    if args.cmd == "train":
        from .cards import INSTALLED, SAMPLE_DIR
        from .zoo import train_sample
        if args.out_dir is None and INSTALLED:
            raise RecipeError(f"train would replace {args.name}, shipped inside the installed package ({SAMPLE_DIR}), "
                              f"for every user of it: give --out-dir DIR to write the new checkpoint and card there, "
                              f"then use it with --model {args.name} --weights DIR/{args.name}.safetensors (a "
                              "checkout's sample_models/ is rebuilt in place)")
        if args.out_dir is not None:
            check_out_dir(args.out_dir)
        data = ce.load_dataset(args.data)
        card = train_sample(args.name, data, progress=epoch_lines(data), out_dir=args.out_dir)
        # the pages' shipped runs are made by running them, which the engine does not know
        if args.out_dir is None and ce.curves.path(args.name).is_file():
            print(f"{args.name} ships its pages' one-shot runs, now of the old weights: remake them with "
                  f"`python scripts/ship_curves.py {args.name}` from a checkout", file=sys.stderr)
        return card
    if args.cmd == "scans":
        from .cards import INSTALLED, SAMPLE_DIR
        from .zoo import ship_scans
        if INSTALLED:  # ship_scans replaces the folder's scans: in an installed package they are every user's
            raise RecipeError(f"scans would replace the sensitivity scans shipped inside the installed package "
                              f"({SAMPLE_DIR}), for every user of it: recompute them in a checkout's sample_models/; "
                              "the Sensitivity page and `compress_engine.sensitivity.scan` keep scans of other data in their own "
                              "cache")
        data = ce.load_dataset(args.data)
        return {name: [str(p) for p in ship_scans(name, data)] for name in args.names}
    if args.cmd == "deploy":
        return deploy(args)
    if args.cmd == "eval":
        artifact = read_artifact(args.artifact)
        ref = model_ref(args.model) if args.model is not None else None
        model = build_model(ref, args.model) if ref else None
        data = ce.load_dataset(args.data)
        unusable = f"{short(args.artifact, 300)} is not a usable artifact"
        own = "; on the command line, give that code with --model path/to/file.py:callable"
        try:
            if model is None:
                decoded, meta = models.decode_model(artifact)  # a zoo architecture, rebuilt from the artifact's spec
            else:
                state, meta = decode_with_meta(artifact)
        except ArtifactError as e:
            raise ArtifactError(f"{unusable}: {e}") from None
        except ModelError as e:  # e.g. an architecture only the user's code knows
            raise ArtifactError(f"{unusable} on its own: {e}{own}") from None
        if model is not None:  # the user's own module: one line naming every mismatch, before the scoring
            model = models.load_target(model, state, meta)  # folded, resized, as decode_model
            decoded = load_strict(model, state, f"artifact {short(args.artifact, 300)}",
                                  f"the model from --model {short(args.model, 300)}").eval()
        try:
            res = models.score_decoded(decoded, meta, len(artifact), data)  # decoded once, not again to score
        except models.DoesNotFitData as e:  # a 28x28 model scored on the 8x8 digits printed torch's traceback
            raise ModelError(f"artifact {short(args.artifact, 300)} cannot be scored on --data "
                             f"{short(args.data, 300)}: {e}; give --data the dataset it was compressed on (default "
                             f"{DEFAULT_DATA})") from None
        return {k: v for k, v in res.items() if k != "model"}
    ref = model_ref(args.model)
    if args.weights is not None:
        check_weights(args.weights)
    if args.cmd == "inspect":
        return ce.describe(user_model(args, ref), ce.load_dataset(args.data))
    budget_kb = budget_from(args) if args.cmd == "run" else None
    flops_share = flops_from(args) if args.cmd == "run" else None
    recipe = recipe_from(args)
    if args.cmd == "run" and args.out is not None:
        check_out(args.out)
    values = sweep_grid(recipe, args.field, {f for f in FIELDS if hasattr(args, f)}) \
        if args.cmd == "sweep" else None
    if args.cmd == "sweep":
        check_sweep_options(args)
    try:
        return _run_loaded(args, ref, recipe, budget_kb, flops_share, values)
    except KeyboardInterrupt as e:  # a sweep's Ctrl-C before its own handler (loading the model, the data, the store)
        from .sweeps import Interrupted
        if args.cmd != "sweep" or isinstance(e, Interrupted):
            raise
        raise Interrupted([], math.prod(map(len, values.values()))) from None


def _run_loaded(args, ref, recipe, budget_kb, flops_share, values):
    """run's commands once their flags are checked: the model and data loaded, then the run, fit or sweep."""
    import compress_engine as ce
    model = user_model(args, ref)
    data = ce.load_dataset(args.data)
    if args.cmd == "sweep" and args.store is not None and data.regression:
        raise DatasetError(f"--store keeps runs for the Compare page, which charts accuracy, but {short(args.data)} "
                           f"holds regression targets: drop --store (the rows, with R² and RMSE, are printed)")
    if args.cmd == "run" and budget_kb is not None:
        return warn_collapse(run_budget(args, model, data, budget_kb, recipe), data)
    if args.cmd == "run" and flops_share is not None:
        return warn_collapse(run_flops(args, model, data, flops_share, recipe), data)
    if args.cmd == "run":
        kept = models.kept_test_logits(ref[1], data) if ref[0] == "sample" and args.weights is None else None
        result = ce.compress(model, recipe, data, progress=run_lines(data), measure_latency=args.latency,
                             model_logits=kept)
        if args.out is not None:
            write_out(args.out, result.artifact)
        return warn_collapse(summary(result), data)
    return run_sweep(args, ref, model, data, recipe, values)


def warn_collapse(out, data, where=""):
    """`out` (run's summary), after a warning line on stderr if the compressed model has collapsed to chance level
    where the dense one had not (explain.collapsed, as every dashboard page warns): its ratio is then of a model that
    no longer classifies. The exit status is unchanged. `where` comes first on the line (a sweep's point:
    "sparsity=0.99: ")."""
    from ..core import chance as collapse
    m = out["metrics"]
    chance = collapse.collapsed(m.get("accuracy"), m.get("dense_accuracy"), data)
    if chance is not None:
        print(f"warning: {where}{collapse.message(m['accuracy'], m['dense_accuracy'], chance, data.n_classes)}",
              file=sys.stderr)
    return out


def epoch_lines(data):
    """A progress callback that prints a line to stderr at the end of each training epoch: the step, the loss and
    the test score (accuracy, or R² for regression targets)."""
    score = "R²" if data.regression else "accuracy"

    def show(step, total, loss, acc):
        if acc is not None and loss is not None:  # (a search's steps report no loss: only training's are printed)
            print(f"step {step}/{total} loss {loss:.4f} test {score} {acc:.4f}", file=sys.stderr)
    return show


def run_lines(data):
    """A progress callback for a compress() run: epoch_lines' line at the end of each training epoch, and a line at
    each tenth of the run's steps (its evaluations' batches are steps too: minutes on a big model with no
    training)."""
    epochs, shown = epoch_lines(data), [0]

    def show(step, total, loss, acc):
        epochs(step, total, loss, acc)
        tenth = step * 10 // total if total else 0
        if tenth > shown[0]:
            shown[0] = tenth
            print(f"step {step:,}/{total:,}", file=sys.stderr)
    return show


def scan_lines():
    """A progress callback for fit_budget's sensitivity scan (minutes on a model of one's own): a line to stderr at
    every tenth of its settings. The scan's keep-alives inside a setting (accuracy None, about every second) print
    nothing: they would repeat the last line."""
    def show(step, total, _loss, acc):
        if acc is None or not step:
            return
        if step == total or step * 10 // total != (step - 1) * 10 // total:
            print(f"sensitivity scan: {step}/{total} settings", file=sys.stderr)
    return show


def user_model(args, ref):
    """The module --model builds, with --weights loaded into it (strictly) when given."""
    model = build_model(ref, args.model)
    if args.weights is not None:
        state = read_state_dict(args.weights, model.state_dict())
        load_strict(model, state, f"--weights {short(args.weights, 300)}",
                    f"the model from --model {short(args.model, 300)}")
    return model


BUDGET_FLAGS = ("finetune_epochs", "lr", "seed", "bias_bits", "finetune_kd", "prune_focus")  # recipe flags a budget run takes
MAX_BUDGET_KB = 10**7


FLOPS_FLAGS = ("finetune_epochs", "lr", "seed", "finetune_kd")  # recipe flags a --flops run takes


def _target(args, name, what, ok, sets, allowed):
    """The number a --budget-kb / --flops flag gives (or None), refusing recipe flags that search sets itself."""
    text = getattr(args, name, None)
    if text is None:
        return None
    try:
        value = float(text) if len(text) <= MAX_FLAG_CHARS else math.nan
    except ValueError:
        value = math.nan
    if not ok(value):
        raise RecipeError(f"{flag(name)}={short(text)}: must be {what}")
    chosen = sorted(flag(f) for f in FIELDS - set(allowed) if hasattr(args, f))
    if chosen:
        raise RecipeError(f"{flag(name)} chooses {sets} itself: drop {', '.join(chosen)} "
                          f"(it takes {', '.join(flag(f) for f in allowed)})")
    return value


def budget_from(args):
    """--budget-kb as a number of KB (or None), refusing recipe flags the budget search sets itself."""
    return _target(args, "budget_kb", f"a number of KB above 0 and at most {MAX_BUDGET_KB:,}",
                   lambda kb: 0 < kb <= MAX_BUDGET_KB, "each layer's sparsity and clusters", BUDGET_FLAGS)


def flops_from(args):
    """--flops as a share of the dense FLOPs (or None), refusing recipe flags the search sets itself."""
    if getattr(args, "flops", None) is not None and getattr(args, "budget_kb", None) is not None:
        raise RecipeError("--flops and --budget-kb each choose every layer's pruning: give one of them")
    return _target(args, "flops", "a share of the model's FLOPs above 0 and below 1 (0.25 = a quarter)",
                   lambda share: 0 < share < 1, "each group's fraction of whole units", FLOPS_FLAGS)


def run_flops(args, model, data, share, recipe):
    """fit_flops: the result's summary plus the plan (FLOPs dense, budgeted and counted; each group's fraction)."""
    import compress_engine as ce
    show = run_lines(data)  # the search's evaluations count as steps: the README's tenth-of-the-run lines
    given = {f: getattr(recipe, f) for f in FLOPS_FLAGS if hasattr(args, f)}  # the rest: fit_flops's defaults
    kw = {f: given[f] for f in ("finetune_epochs", "lr") if f in given}  # fit_flops names them as the Recipe
    result, plan = ce.fit_flops(model, data, share, seed=recipe.seed, kd=given.get("finetune_kd"), progress=show, **kw)
    if args.latency:
        from ..core.pipeline import latency_against
        result.timings.update(latency_against(model, result.model, data))
    if args.out is not None:
        write_out(args.out, result.artifact)
    return {**summary(result), "flops": plan}


def over_budget_line(args, out):
    """The error line for a --budget-kb run whose artifact is still over the budget after fit_budget's tries (its
    OverBudget warning, which run_budget holds back for this line), or None: the JSON printed is that artifact's,
    and it was written to --out (the run took minutes), but the exit status is 1."""
    plan = out.get("budget") if isinstance(out, dict) else None
    if not isinstance(plan, dict) or plan.get("fits") is not False:
        return None
    written = f"; it was written to {args.out} all the same" if getattr(args, "out", None) is not None else ""
    return f"error: {budget.over_budget(plan['budget_bytes'], plan['bytes'], len(plan['attempts']))}{written}"


def run_budget(args, model, data, kb, recipe):
    """fit_budget: the result's summary plus the plan (allocation per layer, bytes predicted and real)."""
    import compress_engine as ce
    from .units import KB
    show = run_lines(data)  # one count over both compress() runs and the cluster scan (fit_budget's)
    # the flags given; the rest are fit_budget's defaults, but for kd: soft targets at budget.KD unless regression
    kw = {f: getattr(recipe, f) for f in ("finetune_epochs", "lr", "bias_bits") if hasattr(args, f)}  # Recipe's names
    kd = recipe.finetune_kd if hasattr(args, "finetune_kd") else None if data.regression else budget.KD
    shipped = [models.scan_dir(args.model)] if args.model in models.SAMPLES else []  # its scans (keyed by weights)
    with warnings.catch_warnings():  # said once, as the error line of over_budget_line
        warnings.simplefilter("ignore", budget.OverBudget)
        result, plan = ce.fit_budget(model, data, round(kb * KB), seed=recipe.seed, progress=show, kd=kd,
                                     focus=recipe.prune_focus, shipped=shipped, scan_progress=scan_lines(), **kw)
    if args.out is not None:
        write_out(args.out, result.artifact)
    return {**summary(result), "budget": plan}


def check_sweep_options(args):
    """--workers / --threads are whole numbers >= 1; Ray must be importable when asked for, and a local runtime's
    --threads no more than this machine's cores (before any work: loading the model and data took seconds)."""
    from . import sweeps
    for name in ("workers", "threads"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= 4096:
            raise RecipeError(f"--{name}={value}: must be a whole number from 1 to 4096")
    if args.ray_address is not None and not args.ray_address.strip():
        raise RecipeError("--ray-address is empty: give 'auto' (on a machine of the cluster) or HOST:6379")
    if args.ray_address is not None:
        sweeps.check_address(args.ray_address)
    if args.workers is not None or args.ray_address is not None:
        sweeps.need_ray("--workers" if args.workers is not None else "--ray-address")
    if args.workers is not None and args.ray_address is None:  # a local runtime: this machine's cores, known now
        sweeps.check_local_threads(args.threads)


def store_name(ref, args):
    """The model's name in the run store: the sample's, or file.py:callable, plus the weights file's name."""
    name = ref[1] if ref[0] == "sample" else f"{ref[1].name}:{ref[2]}"
    return (name if args.weights is None else f"{name} + {args.weights.name}")[:200]


def value_text(value):
    """A swept value as the user types it: none for None (JSON's null was not a value --values takes), else JSON."""
    return "none" if value is None else json.dumps(value, ensure_ascii=False)


def point_text(fields, point):
    """A point as the user types it: 'sparsity=0.9', a grid's 'sparsity=0.9 bits=4' (`point` holds each field)."""
    return " ".join(f"{f}={value_text(point[f])[:80]}" for f in fields)


def point_line(fields):
    """A sweep's on_point: a line on stderr as each point finishes, e.g. 'point 3/10: sparsity=0.9 accuracy 0.8912,
    2.10 s' (a grid's point names each field; R² for regression targets; 'stored' for a point the store had; the
    error of one that failed). `fields` is the swept field's name, or a grid's names in order."""
    fields = (fields,) if isinstance(fields, str) else tuple(fields)  # a name alone is one field, not its letters

    def show(done, total, row, seconds):
        if "error" in row:
            what = f"failed: {one_line(row['error'])[:200]}"
        elif row.get("accuracy") is not None:
            what = f"accuracy {row['accuracy']:.4f}"
        elif row.get("r2") is not None:
            what = f"R² {row['r2']:.4f}"
        else:
            what = "done"
        when = "stored" if seconds is None else f"{seconds:.2f} s"  # one format for every point (not 0.24 then 0.0896)
        print(f"point {done}/{total}: {point_text(fields, row)} {what}, {when}", file=sys.stderr, flush=True)
    return show


def collapse_lines(fields, data):
    """A sweep's on_metrics: run's warning (warn_collapse) under the line of each point whose model has collapsed."""
    def warn(value, metrics):
        point = value if len(fields) > 1 else {fields[0]: value}  # a grid's on_metrics gets the point's fields
        warn_collapse({"metrics": metrics}, data, f"{point_text(fields, point)}: ")
    return warn


def run_sweep(args, ref, model, data, recipe, values):
    """The sweep's rows, a line on stderr as each point finishes. A sample model without --weights travels by name
    (each worker loads it), as does --data; the rows are the same in every backend. With --store, a summary line
    goes to stderr. Ctrl-C raises sweeps.Interrupted, with the rows finished (main prints them)."""
    from . import sweeps
    from .store import Store
    by_name = ref[0] == "sample" and args.weights is None
    store = None if args.store is None else Store(args.store or None, source="--store" if args.store else None)
    with contextlib.redirect_stdout(sys.stderr):  # stdout is the JSON alone (Ray prints notices to sys.stdout)
        fields = list(values)
        how = (values,) if len(fields) > 1 else (fields[0], values[fields[0]])  # a grid, or one field's values
        try:
            rows = sweeps.sweep(args.model if by_name else model, recipe, args.data, *how,
                                workers=args.workers, ray_address=args.ray_address, threads=args.threads, store=store,
                                model_name=store_name(ref, args), on_point=point_line(fields),
                                on_metrics=collapse_lines(fields, data))
        except sweeps.Interrupted as e:
            e.store = None if store is None else store.path  # where the finished points are kept (main says it)
            raise
    if store is not None:
        failed = sum("error" in r for r in rows)
        print(f"sweep: {len(rows) - failed} point(s) in {store.path}, {failed} failed", file=sys.stderr)
    return rows


if __name__ == "__main__":
    sys.exit(main())
