"""Recipe: every compression setting in one frozen, validated, JSON-round-trippable dataclass.

It is the cache key of the dashboard and the key of the run store, so it must be hashable and
must refuse bad values when it is built — with a message naming the field, the value and the
allowed range — rather than fail somewhere deep in the engine.
"""

import difflib
import functools
import json
import math
import numbers
from dataclasses import dataclass, fields

from . import cluster, prune, quantize, train
from .errors import RecipeError, warn

# Every knob list is defined by the technique that owns it; pages and the CLI read them from here.
BITS = quantize.BITS
CHOICES = {
    "prune_scope": prune.SCOPES,
    "schedule": prune.SCHEDULES,
    "cluster_init": cluster.INITS,
    "calibration": quantize.CALIBRATIONS,
    "precision": train.PRECISIONS,
}
# field -> (low, high) inclusive, for numbers
RANGES = {
    "sparsity": (0.0, 0.999),
    "clusters": (cluster.MIN_K, cluster.MAX_K),
    "conv_clusters": (cluster.MIN_K, cluster.MAX_K),
    "temperature": (1.0, 20.0),
    "finetune_kd": (1.0, 20.0),
    "alpha": (0.0, 1.0),
    "prune_focus": (0.0, 4.0),
    "student_width": (10, 2000),
    "distill_epochs": (1, 50),
    "finetune_epochs": (0, 50),
    "lr": (1e-6, 1.0),
    "seed": (0, 2**31 - 1),
}
FRACTIONS = {"sparsity", "alpha"}  # fields that are fractions (0.9), which a percent (90) is refused with a hint
INTS = {"clusters", "conv_clusters", "student_width", "distill_epochs", "finetune_epochs", "seed", "bits",
        "bias_bits"}
BOOLS = {"structured", "symmetric", "per_channel", "huffman"}
OPTIONAL = {"clusters", "conv_clusters", "bits", "temperature", "bias_bits", "finetune_kd"}
# fields added after the first release -> their default (see Recipe.to_dict)
NEWER = {"prune_focus": 0.0, "precision": "float32"}
LAYER_FIELDS = ("sparsity", "clusters")  # what `layers` may set per layer
MAX_LAYERS, MAX_NAME = 10_000, 300


# What each field means, in its units: Recipe's docstring (help(Recipe)) is made from these, one definition; the
# allowed values are added from RANGES / BITS (_allowed), where validation reads them, not typed here.
DOCS = {
    "sparsity": "fraction of weights (or, structured, of hidden units) removed (0.9, not 90)",
    "prune_scope": '"layer": the same sparsity in each layer; "global": one magnitude threshold over all layers',
    "structured": "remove whole neurons / filters, so the dense model shrinks and runs faster",
    "prune_focus": "> 0: rank weights by |w| x their unit's and input's norms ^ focus (prune.focus_scores)",
    "schedule": '"oneshot"; "gradual": Zhu & Gupta cubic ramp during fine-tuning (needs finetune_epochs >= 1)',
    "clusters": "k-means weight sharing with this many centroids per layer; None: no clustering",
    "conv_clusters": "centroids per convolution layer, if not `clusters` (Deep Compression: 256 conv, 32 fc); needs "
                     "clusters set too (to cluster only some layers, give their counts in `layers`)",
    "cluster_init": "how the centroids start: " + ", ".join(cluster.INITS),
    "bits": "uniform quantization bit width; None: no quantization",
    "symmetric": "a quantization grid symmetric about 0 (zero point 0), else affine over [min, max]",
    "per_channel": "a grid per slice of the weight's dim 0: unit, filter, token row (transposed conv: input "
                   "channel), else one per tensor",
    "calibration": "how a quantization grid's range is chosen: " + ", ".join(quantize.CALIBRATIONS),
    "temperature": "set => distil the model into a student first (Hinton KD) at this temperature",
    "alpha": "weight of the soft-target loss in KD (0: the student learns from the labels alone)",
    "student_width": "width of the 2-layer MLP student built when compress() is given no student module",
    "distill_epochs": "epochs of distillation (at distill.distill's learning rate, 1e-3)",
    "finetune_epochs": "fine-tuning epochs after each stage (prune; cluster or quantize); 0: one-shot",
    "lr": "fine-tuning learning rate (Adam), default 5e-4 (fit_budget and fit_flops fine-tune at their own lr, "
          "default 1e-3)",
    "finetune_kd": "fine-tune on the uncompressed model's soft targets at this temperature (weight alpha); None: "
                   "on the labels alone",
    "huffman": "entropy-code each of the weights' streams where that is smaller (Huffman or range coding); the "
               "header records the recipe, so with nothing to save the artifact can be a few bytes larger than "
               "without",
    "bias_bits": "store the compressible layers' biases on a per-tensor grid of this many bits; None: float32",
    "layers": 'per-layer overrides {"fc1.weight": {"sparsity": 0.97, "clusters": 4}} (mixed precision)',
    "seed": "seeds fine-tuning and distillation: same recipe + seed => same numbers, bit for bit",
    "precision": "number format of training's matrix products and convolutions (fine-tuning, distillation): bfloat16 "
                 "is mixed precision (torch.autocast; weights, loss and optimizer state stay float32), 1.8x faster "
                 "on a CPU with AMX (LeNet-5's fine-tuning epoch, bench/speed.py), slower where bfloat16 is emulated "
                 "(train.native_bfloat16); evaluation is float32 either way",
}


@dataclass(frozen=True)
class Recipe:
    """What to do to a model. Defaults do nothing (the dense model, stored as float32)."""  # + DOCS, below
    sparsity: float = 0.0
    prune_scope: str = "layer"
    structured: bool = False
    prune_focus: float = 0.0
    schedule: str = "oneshot"
    clusters: int | None = None
    conv_clusters: int | None = None
    cluster_init: str = "linear"
    bits: int | None = None
    symmetric: bool = False
    per_channel: bool = False
    calibration: str = "minmax"
    temperature: float | None = None
    alpha: float = 0.9
    student_width: int = 800
    distill_epochs: int = 5
    finetune_epochs: int = 0
    lr: float = 5e-4
    finetune_kd: float | None = None
    huffman: bool = False
    bias_bits: int | None = None
    layers: tuple = ()
    seed: int = 0
    precision: str = "float32"

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in OPTIONAL:
                continue
            object.__setattr__(self, f.name, check(f.name, value))
        if any(k is not None for _, _, k in self.layers) and self.bits is not None:
            raise RecipeError(f"layers sets cluster counts and bits={self.bits}: per-layer clusters need weight "
                              "clustering, not uniform quantization (set bits to None)")
        if any(s is not None for _, s, _ in self.layers) and self.prune_scope == "global":
            raise RecipeError("layers sets per-layer sparsities: use prune_scope='layer' with them")
        if self.clusters is not None and self.bits is not None:
            raise RecipeError(f"clusters={self.clusters} and bits={self.bits}: choose weight clustering or "
                              "uniform quantization, not both (set the other to None)")
        if self.conv_clusters is not None and self.clusters is None:
            raise RecipeError(f"conv_clusters={self.conv_clusters} needs clusters set too: it overrides the "
                              "cluster count of convolution layers only. To cluster only some layers (the "
                              "convolutions alone, say), give each its count in layers= instead, e.g. "
                              f"layers={{'conv1.weight': {{'clusters': {self.conv_clusters}}}}}")
        if self.bits == 1 and self.symmetric:
            raise RecipeError("bits=1 with symmetric=True: a symmetric 1-bit grid is {-2m, 0} (m = the largest "
                              "|weight|), which loses every positive weight; use symmetric=False (affine) for 1-bit "
                              "weights")
        if self.schedule == "gradual" and self.finetune_epochs == 0:
            raise RecipeError("schedule='gradual' needs finetune_epochs >= 1: the cubic schedule prunes a "
                              "little at each fine-tuning step")
        if self.prune_focus and self.structured:
            raise RecipeError(f"prune_focus={self.prune_focus} ranks single weights; structured=True removes whole "
                              "units already: set prune_focus=0 with it")
        if self.structured and self.prune_scope == "global":
            raise RecipeError("structured=True prunes the same fraction of units in each layer; "
                              "use prune_scope='layer' with it")

    # --- per layer ---
    def layer(self, name, conv=False):
        """(sparsity, clusters) for the compressible weight `name`: its override in `layers`, else the recipe's
        (clusters: conv_clusters for a convolution if set). clusters None = not clustered."""
        over = {n: (s, k) for n, s, k in self.layers}.get(name, (None, None))
        default_k = self.conv_clusters if conv and self.conv_clusters else self.clusters
        return (self.sparsity if over[0] is None else over[0]), (default_k if over[1] is None else over[1])

    def layer_sparsities(self):
        """{compressible weight name: sparsity} of the layers whose sparsity `layers` sets."""
        return {n: s for n, s, _ in self.layers if s is not None}

    def prunes(self):
        return self.sparsity > 0 or any(s for _, s, _ in self.layers)

    def shares(self):
        """Does any layer get weight clustering?"""
        return self.clusters is not None or any(k is not None for _, _, k in self.layers)

    def trains(self):
        """Does this recipe train (fine-tuning or distillation)?"""
        return bool(self.finetune_epochs) or self.temperature is not None

    # --- serialisation ---
    def to_dict(self):
        """Every field, except those added since the first release while at their defaults (NEWER): every
        earlier recipe keeps its JSON, so its run-store and cache keys and its artifacts' bytes stay the same; and
        except precision in a recipe that trains nothing, which it does not change."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}  # every field is a scalar but `layers`, replaced
        for name, default in NEWER.items():
            if d[name] == default:
                del d[name]
        if not self.trains():
            d.pop("precision", None)  # nothing trains: the same run (and key) whatever the precision
        d["layers"] = {n: {k: v for k, v in zip(LAYER_FIELDS, (s, c)) if v is not None} for n, s, c in self.layers}
        return d

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    def changes(self):
        """The fields that differ from a default Recipe, in to_dict form: what an artifact carries (about 120
        bytes less than every field, the same recipe: from_dict fills in the rest)."""
        base = Recipe().to_dict()
        return {k: v for k, v in self.to_dict().items() if k not in base or v != base[k]}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise RecipeError(f"a recipe must be a JSON object of fields, got {type(d).__name__}")
        refuse_unknown(d)  # its keys may be other than text, which Recipe(**d) could not even be called with
        return cls(**d)

    @classmethod
    def from_json(cls, text):
        try:
            d = json.loads(text, parse_int=_json_int, object_pairs_hook=_unique_keys)
        except RecipeError:
            raise
        except (ValueError, TypeError) as e:
            raise RecipeError(f"recipe is not valid JSON: {e}") from None
        except RecursionError:
            raise RecipeError("recipe JSON is nested too deeply: a recipe is one flat JSON object") from None
        return cls.from_dict(d)

    def replace(self, **changes):
        return Recipe.from_dict({**self.to_dict(), **changes})

    def techniques(self):
        """Short names of what this recipe does, e.g. ['prune', 'cluster']; ['dense'] if nothing."""
        t = [name for name, on in (("distill", self.temperature is not None), ("prune", self.prunes()),
                                   ("cluster", self.shares()), ("quantize", self.bits is not None),
                                   ("huffman", self.huffman)) if on]
        return t or ["dense"]


MAX_DIGITS = 30  # a whole number in a recipe's JSON: every field's range (seed's 2**31 - 1 included) is far below it


def _json_int(text):
    """A whole number of a recipe's JSON; a longer one than any field takes is refused by its length (Python's own
    limit on converting digits says to raise sys.set_int_max_str_digits, of no use to whoever wrote the file)."""
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise RecipeError(f"recipe JSON holds a whole number of {len(text.lstrip('-')):,} digits ({text[:12]}…); no "
                          f"recipe field takes more than {MAX_DIGITS} digits (the largest, seed, is at most {RANGES['seed'][1]:,})")
    return int(text)


def _brief(value):
    """A number far out of any field's range, briefly: 1e+308, 1.23e+25, or an int beyond float's range by its
    digits (str() of one with thousands of digits is itself refused by Python)."""
    if isinstance(value, numbers.Integral) and abs(value) >= 10**308:
        return f"{'-' if value < 0 else ''}a number of about {int(abs(value)).bit_length() * math.log10(2):,.0f} digits"
    return f"{float(value):.3g}"


def _unique_keys(pairs):
    """A JSON object of a recipe as a dict, refusing a key given twice (json.loads would keep the last silently:
    {"sparsity": 0.5, "sparsity": 0.9} is 0.9). The message calls the key a layer when it names one in `layers`
    (an object of a layer's fields, under a name no field has), a field otherwise."""
    out = {}
    for k, v in pairs:
        if k in out:
            what = "layer" if isinstance(v, dict) and k not in FIELD_NAMES else "field"
            raise RecipeError(f"recipe JSON gives {k[:80]!r} twice: give each {what} once")
        out[k] = v
    return out


def _allowed(name):
    return "one of 1-8 or 16" if name in ("bits", "bias_bits") else "between {} and {}".format(*RANGES[name])


def check_layers(value):
    """`layers` in canonical form: a sorted tuple of (name, sparsity or None, clusters or None). Accepts
    {name: {"sparsity": s, "clusters": k}} (the JSON form), JSON text of it, or the canonical tuple."""
    shown = str(value)[:60]

    def bad(why):
        raise RecipeError(f"layers={shown}: {why}")
    if isinstance(value, str):
        try:
            value = json.loads(value, object_pairs_hook=_unique_keys)
        except RecipeError as e:
            bad(str(e).replace("recipe JSON", "its JSON"))
        except (ValueError, RecursionError):
            bad("not valid JSON; give {layer name: {\"sparsity\": s, \"clusters\": k}}")
    if isinstance(value, (tuple, list)):
        if not all(isinstance(t, (tuple, list)) and len(t) == 3 and isinstance(t[0], str) for t in value):
            bad("give {layer name: {\"sparsity\": s, \"clusters\": k}} (or (name, s, k) triples)")
        if len({t[0] for t in value}) != len(value):
            bad("a layer is named twice")
        value = {t[0]: {f: v for f, v in zip(LAYER_FIELDS, t[1:]) if v is not None} for t in value}
    if not isinstance(value, dict):
        bad("must be an object {layer name: {\"sparsity\": s, \"clusters\": k}}")
    if len(value) > MAX_LAYERS:
        bad(f"{len(value):,} entries; at most {MAX_LAYERS:,}")
    out = []
    for name, over in value.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            bad(f"layer name {str(name)[:80]!r} must be a non-empty string of at most {MAX_NAME} characters")
        if not isinstance(over, dict) or not over or set(over) - set(LAYER_FIELDS):
            bad(f"{name[:80]!r} must map to an object with {' and/or '.join(LAYER_FIELDS)}, got {str(over)[:60]}")
        if over.get("clusters", 0) is None:  # None would read as "the recipe's clusters", not "no clustering"
            bad(f"layer {name[:80]!r}: \"clusters\": None does not leave one layer unclustered (None, like a missing "
                "key, means the recipe's clusters). To cluster only some layers, set clusters=None and give each "
                "clustered layer its count here, e.g. {\"fc1.weight\": {\"clusters\": 16}}")
        if over.get("sparsity", 0) is None:
            bad(f"layer {name[:80]!r}: \"sparsity\": None means the recipe's sparsity; give 0.0 to keep this layer "
                "whole, or leave the key out")
        vals = []
        for f in LAYER_FIELDS:
            v = over.get(f)
            try:
                vals.append(None if v is None else check(f, v))
            except RecipeError as e:
                bad(f"layer {name[:80]!r}: {e}")
        out.append((name, *vals))
    return tuple(sorted(out))


def check(name, value):
    """Validate one field's value and return it in canonical type; RecipeError names the problem."""
    if name == "layers":
        return check_layers(value)
    if name in BOOLS:
        if not isinstance(value, bool):
            raise RecipeError(f"{name}={value!r}: must be true or false")
        return value
    if name in CHOICES:
        if value not in CHOICES[name]:
            raise RecipeError(f"{name}={value!r}: must be one of {', '.join(CHOICES[name])}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RecipeError(f"{name}={value!r}: must be a number" + (" or None" if name in OPTIONAL else ""))
    if not isinstance(value, numbers.Integral) and not math.isfinite(value):
        raise RecipeError(f"{name}={value!r}: must be a finite number")
    if abs(value) > 2**63 and (isinstance(value, numbers.Integral) or name in INTS):  # beyond every field's range:
        # as a whole number, clusters=1e308 would print 309 digits
        raise RecipeError(f"{name}={_brief(value)}: far out of range ({_allowed(name)})")
    if name in INTS:
        if value != int(value):
            raise RecipeError(f"{name}={value!r}: must be a whole number")
        value = int(value)
    else:
        value = float(value)
    if name in ("bits", "bias_bits"):
        if value not in BITS:
            raise RecipeError(f"{name}={value!r}: must be {_allowed(name)} (or None for " +
                              ("no quantization)" if name == "bits" else "float32 biases)"))
        return value
    lo, hi = RANGES[name]
    if not lo <= value <= hi:
        percent = name in FRACTIONS and 1 < value <= 100 and lo <= value / 100 <= hi  # 90 for 0.9
        raise RecipeError(f"{name}={value!r}: must be {_allowed(name)}"
                          + (f" (a fraction: did you mean {value / 100:g}?)" if percent else ""))
    return value


def _docstring():
    """Recipe's docstring: its summary line, then each field with its default and its DOCS text."""
    assert set(DOCS) == {f.name for f in fields(Recipe)}, "every Recipe field needs its DOCS entry"
    lines = [f"    {f.name}={f.default!r}: {DOCS[f.name]}"
             + (f" [{_allowed(f.name)}]" if f.name in RANGES or f.name in ("bits", "bias_bits") else "")
             for f in fields(Recipe)]
    return Recipe.__doc__ + "\n\nFields (name=default: meaning):\n\n" + "\n".join(lines) + "\n"


Recipe.__doc__ = _docstring()
_dataclass_init = Recipe.__init__
FIELD_NAMES = frozenset(f.name for f in fields(Recipe))  # every Recipe() checks its keywords against them


def refuse_unknown(names):
    """RecipeError naming every one of `names` that is not a Recipe field, with the field meant (Recipe(sparsty=0.9):
    did you mean 'sparsity'?)."""
    unknown = sorted(repr(n) for n in names if n not in FIELD_NAMES)
    if unknown:
        meant = [f"{u} (did you mean {close[0]!r}?)"
                 if (close := difflib.get_close_matches(u.strip("'"), FIELD_NAMES, 1)) else u for u in unknown]
        raise RecipeError(f"unknown recipe field(s) {', '.join(meant)}; allowed: {sorted(FIELD_NAMES)}")


def _recipe_init(self, *args, **kwargs):
    """Recipe(...) with a field it does not have is a RecipeError (refuse_unknown), as from_dict's and the JSON's
    are, not Python's TypeError."""
    refuse_unknown(kwargs)
    _dataclass_init(self, *args, **kwargs)


Recipe.__init__ = _recipe_init


def renamed(**old_to_new):
    """A decorator keeping a function's old keyword names working: each old=new given as old is passed on as new,
    with a DeprecationWarning naming the new name (a function taking a Recipe's setting names it as the Recipe
    does: fit_budget(finetune_epochs=), once epochs=). Both names at once is a TypeError, as for any keyword given
    twice."""
    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            for old, new in old_to_new.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(f"{fn.__name__}() got both {old}= and {new}=: give {new}= alone ({old}= is its "
                                    f"old name)")
                warn(f"{fn.__name__}({old}=...) is now {fn.__name__}({new}=...), the Recipe's name for it; "
                     f"{old}= still works for now but will be removed", DeprecationWarning)
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)
        return call
    return wrap
