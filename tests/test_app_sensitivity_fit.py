"""AppTest of the Sensitivity page's Fit cards agreeing with the table under them."""

import pytest

from test_app import metric, number, page
from conftest import plots


@pytest.fixture(scope="module")
def fit_on_disk(fmnist, tmp_path_factory):
    """One real 30 KB Fit, pressed once for the module: its result kept on disk (as a server keeps it)."""
    folders = {"COMPRESS_CACHE": tmp_path_factory.mktemp("cache"), "COMPRESS_TRAINED": tmp_path_factory.mktemp("fit")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in folders.items():
            mp.setenv(k, str(v))
        at = page("sensitivity", "lenet-300-100")
        at.number_input(key="budget_kb").set_value(30.0).run()
        at.button(key="budget_go").click().run()
        assert not at.exception and not at.error
        assert any(k[0] == "fit_budget" for k in at.session_state["trained"])
    return folders


@pytest.fixture
def fitted(fit_on_disk, monkeypatch):
    """A fresh session showing that Fit (read back from disk, as a reload or another student sees it): each test
    may change its own copy."""
    for k, v in fit_on_disk.items():
        monkeypatch.setenv(k, str(v))
    at = page("sensitivity", "lenet-300-100")
    at.number_input(key="budget_kb").set_value(30.0).run()
    assert not at.exception and not at.error
    assert any(k[0] == "fit_budget" for k in at.session_state["trained"])
    return at


def test_the_fits_weights_kept_card_is_the_tables_weights_kept(fitted):
    """LeNet-5's card said 21,946 weights kept 'of 431,080' where its table's 'weights kept' summed to 21,500: the
    card counted every non-zero parameter, biases included, which the other pages call 'Non-zero parameters'."""
    card = next(m for m in fitted.metric if m.label == "Weights kept")
    table = fitted.dataframe[1].value
    assert number(card.value) == table["weights kept"].sum()
    fit = next(v for k, v in fitted.session_state["trained"].items() if k[0] == "fit_budget")
    layers = {r["name"]: r["params"] for r in fit["metrics"]["layers"]}
    assert card.delta == f"of {sum(layers[name] for name in table['layer']):,}"  # the table's layers' weights
    assert f"{fit['metrics']['nonzero_params']:,} non-zero parameters" in card.help
    assert number(metric(fitted, "Artifact")) <= 30.0


def test_every_layer_and_every_part_of_a_fit_gets_its_own_colour(fmnist):
    """ResNet-8's ten layers and its fit's twelve parts were coloured from a 9-colour palette, cycling: stem.weight and
    fc.weight were both blue. Each line of the scan's charts has its own colour, and charts.colours gives n apart."""
    import json

    from pages import charts

    at = page("sensitivity", "resnet-8")
    assert not at.exception and not at.error
    for chart in plots(at)[:2]:  # accuracy lost by pruning, by sharing: one line a layer
        lines = [t for t in json.loads(chart)["data"] if t.get("mode") == "lines+markers"]
        assert len(lines) == 10
        assert len({t["line"]["color"] for t in lines}) == len(lines), [t["line"]["color"] for t in lines]
    many = charts.colours(12)  # the fit's parts on ResNet-8
    assert many[:len(charts.PALETTE)] == list(charts.PALETTE) and len(set(many)) == 12
    assert charts.GREY not in many and len(set(charts.colours(40))) == 40


def fit_check(budget_bytes, model="lenet-300-100"):
    """fit_budget's own verdict on a budget before any training: its RecipeError, or None when it would start
    training (stopped at its first step here)."""
    import compress_engine as ce
    from compress_engine.playground import zoo

    net, data = ce.load_model(model), ce.load_dataset("fashion-mnist")
    scan = ce.sensitivity.cached(net, data, split="train", refit=True, shipped=[zoo.scan_dir(model)])
    stop = lambda *_: False  # noqa: E731
    try:
        ce.fit_budget(net, data, budget_bytes, finetune_epochs=1, scan=scan, kd=4.0, progress=stop,
                      answers_progress=stop)
    except ce.RecipeError as e:
        return e
    except ce.Stopped:
        return None


def test_the_budget_box_starts_at_the_least_budget_the_engine_takes(fmnist):
    """The box went down to 1 KB, which the engine refuses for LeNet-300-100 (it names 3.6 KB or more); its least value
    is now the least budget fit_budget's checks let through, computed for the sidebar's model."""
    at = page("sensitivity", "lenet-300-100")
    box = at.number_input(key="budget_kb")
    least = box.min
    assert least > 1.0 and f"From {least:,.2f} KB" in box.help
    assert fit_check(round(least * 1000)) is None
    assert fit_check(round(least * 1000) - 100) is not None


def test_an_impossible_budget_is_refused_before_anything_is_queued(fmnist, monkeypatch):
    """Fit in 1 KB on LeNet-300-100 waited ~100 s in the training queue behind another run, then was refused. A budget
    kept from before is raised to the box's least value, so the Fit button never names one the engine refuses; and
    where even the dense size is too small a budget (here: the engine's room for training made huge), the page
    refuses it at once, in the engine's words, and queues nothing."""
    import compress_engine as ce
    from pages import common

    queued = []
    monkeypatch.setattr(type(ce.jobs.pool()), "submit", lambda self, key, *a, **k: queued.append(key))
    at = page("sensitivity", "lenet-300-100")
    at.session_state["budget_kb"] = 1.0  # e.g. kept from before the box had its least value
    at.run()
    least = at.number_input(key="budget_kb").min
    assert at.number_input(key="budget_kb").value == least and fit_check(round(least * 1000)) is None
    assert at.button(key="budget_go").label == f"Fit in {least:,.4g} KB"

    monkeypatch.setattr(ce.budget, "SLACK", 1000.0)  # no budget under the dense size passes now
    at.run()
    at.button(key="budget_go").click().run()
    assert not at.exception and not queued
    budget = round(at.number_input(key="budget_kb").value * 1000)
    assert [e.value for e in at.error] == [common.md_text(fit_check(budget))]


def test_the_fits_table_says_how_each_layer_is_stored_as_clustering_does(fitted):
    """An entropy-coded layer of LeNet-300-100's fit read '16 shared values (4 bit)' where Clustering's table, of the
    same tensor, says '16 centroids, Huffman-coded: 7.0 bits a kept weight': the Fit table now uses explain.stored_as,
    so a coded tensor says what its bytes measure per kept weight."""
    from compress_engine.playground.explain import stored_as

    table = fitted.dataframe[1].value
    fit = next(v for k, v in fitted.session_state["trained"].items() if k[0] == "fit_budget")
    real = {r["name"]: r for r in fit["metrics"]["layers"]}
    assert list(table["stored as"]) == [stored_as(real[n], True) for n in table["layer"]]
    assert any(real[n].get("coding") not in (None, "fixed") for n in table["layer"])  # one coded layer at least
    assert not any("shared values" in s for s in table["stored as"])


def test_a_real_fit_replayed_through_export_is_saved_as_the_fit(fitted, tmp_path, monkeypatch):
    """The Fit kept its result under its recipe without its budget, so Export's replay saved it as the recipe's
    techniques ('prune+cluster+...+finetune4'), not as the 'fit 30 KB' Compare groups with the Fit's own Save."""
    from compress_engine.playground import store
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))
    fit = next(v for k, v in fitted.session_state["trained"].items() if k[0] == "fit_budget")
    at = page("export", "lenet-300-100")
    at.session_state["export_uploaded_recipe"] = ("fit.json", fit["recipe"])
    at.run()
    at.button(key="export_save").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert [r["technique"] for r in store.Store().list()] == ["fit 30 KB"]


def test_a_fit_at_chance_level_says_the_model_has_collapsed(fitted):
    """Every page warned of a result at chance level but the Sensitivity page's Fit (9997a50)."""
    assert not any("has collapsed" in w.value for w in fitted.warning)
    key, fit = next((k, v) for k, v in fitted.session_state["trained"].items() if k[0] == "fit_budget")
    fit["metrics"]["accuracy"] = 0.1  # Fashion-MNIST's test set: 1,000 images of each of 10 classes
    fitted.run()
    assert any("has collapsed" in w.value for w in fitted.warning)


def test_a_fit_over_its_budget_says_so(fitted):
    """fit_budget returns its last try with plan["fits"] False when every try came out over the budget (2b8045c): the
    command line says so and exits 1, while the page showed the artifact under "budget 30 KB" with no word."""
    assert not any("Over the budget" in w.value for w in fitted.warning)
    key, fit = next((k, v) for k, v in fitted.session_state["trained"].items() if k[0] == "fit_budget")
    fit["plan"]["fits"] = False
    fit["metrics"]["artifact_bytes"] = fit["plan"]["budget_bytes"] + 321
    fitted.run()
    [said] = [w.value for w in fitted.warning if "Over the budget" in w.value]
    assert "321 over the budget of 30,000 bytes" in said and "press Fit with a larger budget" in said
