"""Pipeline's paper chart drew the 'ours' legend swatch from its first bar's pattern (dotted or hatched, like the
'dotted: one-shot' and 'hatched: loses over 0.5 points' entries beside it), and those two legend-only entries took
bar slots, so the bars were a quarter of the category wide, off-centre. The table beside showed the pruning stage's
one-shot accuracy next to a chart drawing a fine-tuned pruning-only run, unnamed. Now the ours entry is plain, the
legend-only entries share ours' slot, and with fine-tuning the table's stage rows say one-shot."""

from test_app import page
from test_fix50_f5_pipeline_paper import chart


def test_the_ours_swatch_is_plain_and_the_caveats_take_no_bar_slot(tiny):
    at = page("pipeline", model="lenet-5")
    at.button(key="pipe_preset").click().run()
    at.button(key="pipe_train").click().run()
    assert not at.exception and not at.error
    data = [t for t in chart(at, "Ratio and accuracy change")["data"] if t["type"] == "bar"]
    ours = [t for t in data if t.get("name", "").startswith("ours")]
    listed = [t for t in ours if t.get("showlegend", True)]
    assert len(listed) == 1 and not listed[0]["marker"].get("pattern")  # one plain swatch
    assert any(t.get("showlegend") is False and t["marker"].get("pattern") for t in ours)  # the patterned bars
    assert len(data) > 2 and len({t.get("offsetgroup") for t in data}) == 2 and None not in {t.get("offsetgroup") for t in data}
    table = at.dataframe[0].value
    stages = list(table["stage"])
    assert stages[-1].startswith("fine-tuned") and all(s.endswith("(one-shot)") for s in stages[1:-1])
    assert stages[0] == "dense float32"  # no "(one-shot)": nothing compressed it (a diff review)
