"""AppTest of Compare's "Download CSV": the runs as the table shows them, names included."""

import io

import pandas as pd
from streamlit.delta_generator import DeltaGenerator
from test_app_compare_export import compare, results, seeded, store  # noqa: F401 (fixtures)


def spy_downloads(monkeypatch):
    """{label: data} of every download button the page draws from here on (the CSV a user would get)."""
    sent = {}
    real = DeltaGenerator.download_button

    def spy(self, label, data, *args, **kwargs):
        sent[label] = data
        return real(self, label, data, *args, **kwargs)
    monkeypatch.setattr(DeltaGenerator, "download_button", spy)
    return sent


def test_the_csv_keeps_the_names_given_to_runs(seeded, store, monkeypatch):  # noqa: F811
    """After naming run #7 'L5 export fifty' the CSV's header was id,created,model,...: no name column."""
    store.rename(seeded[0], "L5 export fifty")
    sent = spy_downloads(monkeypatch)
    at = compare()
    assert not at.exception and not at.error
    table = pd.read_csv(io.StringIO(sent["Download CSV"]))
    assert list(table.columns[:2]) == ["id", "name"]
    names = dict(zip(table["id"], table["name"]))
    assert names[seeded[0]] == "L5 export fifty" and sorted(names) == sorted(seeded)
