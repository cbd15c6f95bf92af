"""A run store the dashboard cannot write (a read-only folder or file) is listed on Compare with a note saying so,
and Delete and Rename are off: they could only fail. (The store's read-only opening is tests/test_fix51_f2_*.)"""

from test_app_compare_export import compare, results, seeded, select, store  # noqa: F401 -- fixtures

from compress_engine.playground.store import Store
from conftest import plots


def test_a_read_only_store_is_listed_with_a_note_and_no_delete_or_rename(seeded, monkeypatch):
    monkeypatch.setattr(Store, "_writable", lambda self: False)
    at = select(compare(), [0])
    assert not at.exception and not at.error
    assert len(at.dataframe[0].value) == len(seeded)  # every run listed
    note = [i.value for i in at.info if "can only be read here" in i.value]
    assert note and "COMPRESS\\_STORE" in note[0]
    delete = next(b for b in at.button if b.label.startswith("Delete selected"))
    assert delete.disabled
    assert not [t for t in at.text_input if t.label.startswith("Name of run")]  # no Rename form


def test_a_writable_store_has_no_note_and_its_delete_and_rename(seeded):
    at = select(compare(), [0])
    assert not [i.value for i in at.info if "can only be read here" in i.value]
    assert not next(b for b in at.button if b.label.startswith("Delete selected")).disabled
    assert [t for t in at.text_input if t.label.startswith("Name of run")]


def test_with_one_model_shown_each_technique_has_its_own_marker_shape(seeded):
    """Colour was all that told a model's techniques apart (a red and a green circle): not enough for colour-blind
    users (an accessibility audit, WCAG 1.4.1). With one model shown, each technique has its own shape too."""
    import json
    at = compare()
    traces = [t for t in json.loads(plots(at)[0])["data"] if t.get("legendgroup")]
    shapes = {t["legendgroup"]: t["marker"]["symbol"] for t in traces}
    assert len(shapes) >= 3 and len(set(shapes.values())) == len(shapes), shapes


def test_a_read_only_stores_hint_offers_no_delete_or_naming(seeded, monkeypatch):
    monkeypatch.setattr(Store, "_writable", lambda self: False)
    at = compare()
    hint = next(c.value for c in at.caption if c.value.startswith("Tick rows"))
    assert "delete" not in hint and "name it" not in hint and hint.endswith("or download them.")
