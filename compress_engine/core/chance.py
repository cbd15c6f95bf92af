"""When a compressed model has collapsed to chance level: the one criterion compress(), fit_budget(), the command line
and every dashboard page use, and the words they say it in.

A model pruned or quantized too far answers (nearly) one class for every input: its accuracy is the share of the
test set's most frequent class, about 1 / classes, while its ratio still looks like a success. The dense model
scoring above that is what makes it a collapse (a model that never learned is not one).
"""

from .errors import warn

CHANCE_MARGIN = 0.02  # an accuracy this close to chance (as a fraction) is a collapse: one class answered, or nearly


class CollapseWarning(UserWarning):
    """compress() / fit_budget()'s warning that the result has collapsed to chance level (collapsed())."""


def chance_level(data):
    """The test accuracy of answering the test set's most frequent class for every input (about 1 / classes): what
    a model that has collapsed scores. None for data scored otherwise (regression, multi-label)."""
    if data.regression or data.multilabel:
        return None
    y = data.y("test")
    counts = y[y >= 0].flatten().bincount(minlength=data.n_classes)
    return counts.max().item() / max(counts.sum().item(), 1)


def collapsed(accuracy, dense_accuracy, data):
    """data's chance level (chance_level) if `accuracy` is within CHANCE_MARGIN of it and `dense_accuracy` is not,
    else None: a compressed model that no longer tells the classes apart, where the dense one did."""
    chance = chance_level(data)
    if accuracy is None or chance is None or not accuracy <= chance + CHANCE_MARGIN < dense_accuracy:
        return None
    return chance


def _pct(fraction):
    return f"{100 * fraction:.2f} %"


def message(accuracy, dense_accuracy, chance, n_classes):
    """The words for a collapsed result (collapsed() gave `chance`): the command line's and warn_if_collapsed's."""
    return (f"the compressed model has collapsed: its test accuracy {_pct(accuracy)} is chance level (answering the "
            f"test set's most frequent class for every input scores {_pct(chance)}, {n_classes:,} classes; the dense "
            f"model's is {_pct(dense_accuracy)}), so its ratio is of a model that no longer tells the classes apart: "
            f"compress less")


def warn_if_collapsed(metrics, data):
    """A CollapseWarning (message()) when a result's metrics say it has collapsed (collapsed()), at the user's line
    that called the engine (errors.warn)."""
    chance = collapsed(metrics.get("accuracy"), metrics.get("dense_accuracy"), data)
    if chance is not None:
        warn(message(metrics["accuracy"], metrics["dense_accuracy"], chance, data.n_classes), CollapseWarning)
