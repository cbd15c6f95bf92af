"""Every chart says what it shows: Export's per-tensor bars and Distillation's test image had no title (a screen
reader announced an unnamed graphic; a reader saw bars with no heading)."""

import json

from test_app import page
from conftest import plots


def titles(at):
    return [json.loads(c)["layout"].get("title", {}).get("text") for c in plots(at)]


def test_every_chart_on_export_and_distillation_has_a_title(fmnist):
    export, distillation = titles(page("export")), titles(page("distillation"))
    assert "Each tensor's bytes, by part" in export and all(export), export
    assert "Test image 0" in distillation and all(distillation), distillation
