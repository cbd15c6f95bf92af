"""A grid's sweeps on the Compare page: each setting of the other fields is its own sweep, and all of them share the
points' technique colour (prune+quantize for sparsity x bits). They were drawn as lines of one colour, width and dash,
so a user could not tell "bits=2" from "bits=8" on the chart or in its legend. Each sweep of a colour now has its own
dash (charts.DASHES), the first saved solid, in the order the sweeps were saved."""

import json

import compress_engine as ce
from compress_engine.playground.store import Store

from small_nets import Plain, data
from conftest import plots


def test_a_grids_sweeps_of_one_colour_each_have_their_own_dash(tmp_path, monkeypatch, fmnist):
    from pages import charts, common
    from test_app import app
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    drawn, real_chart = [], common.chart
    monkeypatch.setattr(common, "chart", lambda fig, *a, **kw: (drawn.append(fig), real_chart(fig, *a, **kw))[1])
    ce.sweep(Plain(), ce.Recipe(), data(), {"sparsity": [0.5, 0.9], "bits": [2, 4, 8]}, store=Store(),
             model_name="lenet-300-100")
    at = app().run().switch_page("pages/compare.py").run()
    assert not at.exception and not at.error
    [fig] = [f for f in drawn if any(t.name and t.name.startswith("sweep #") for t in f.data)]
    lines = [t for t in fig.data if t.name and t.name.startswith("sweep #")]
    assert [t.name.split(":")[0] for t in lines] == ["sweep #1", "sweep #2", "sweep #3"]  # saved order
    assert len({t.line.color for t in lines}) == 1  # one technique: colour alone cannot tell them apart
    assert [t.line.dash for t in lines] == list(charts.DASHES[:3])  # so a dash each, the first solid
    spec = json.loads(plots(at)[0])  # what the browser gets
    assert [t["line"]["dash"] for t in spec["data"] if t.get("name", "").startswith("sweep #")] == \
        list(charts.DASHES[:3])
