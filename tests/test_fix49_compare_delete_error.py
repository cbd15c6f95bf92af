"""Compare's "Could not delete" error was drawn just before the page's st.rerun(), so nobody ever saw it: the run
stayed and the page said nothing. It is now said after the rerun."""

from test_app_compare_export import compare, seeded, select, store, results  # noqa: F401 -- fixtures

from compress_engine.core.errors import StoreError
from compress_engine.playground.store import Store


def test_a_failed_delete_says_so_after_the_rerun(seeded, store, monkeypatch):  # noqa: F811
    def refuse(self, ids):
        raise StoreError("the run store is read-only here: **check** its folder's permissions")

    monkeypatch.setattr(Store, "delete", refuse)
    at = select(compare(), [0])
    at = next(b for b in at.button if b.label.startswith("Delete selected")).click().run()
    at = next(b for b in at.button if b.label == "Yes, delete").click().run()
    assert not at.exception
    assert any("Could not delete: the run store is read-only here" in w.value.replace("\\", "") for w in at.warning)
    assert store.count() == 4
