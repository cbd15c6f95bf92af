"""On a server of its own data, pages said Fashion-MNIST's figures: Sensitivity "on a fixed set of 2,000 test
images" where the test set had 1,500, Compare "on the full 10,000-image test set", Pipeline "ours on
Fashion-MNIST". They now follow the server's data (common.data_text, common.test_count)."""

import pytest
from test_app import app


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_STORE", str(tmp_path / "runs.sqlite"))


def page(name):
    return app().run().switch_page(f"pages/{name}.py").run(timeout=300)


def test_sensitivity_counts_the_images_it_scans(tiny, store):
    at = page("sensitivity")
    assert not at.exception
    said = " ".join(c.value for c in at.caption)
    # all of them, and whose (an own-data review read "a fixed set of 1,500" for a folder of 1,500 test images)
    assert "on all 500 test images of " in said and "2,000" not in said and "fixed set" not in said


def test_compare_and_pipeline_do_not_say_fashion_mnist(tiny, store):
    at = page("compare")
    assert not at.exception and not any("10,000" in c.value for c in at.caption)
    at = page("pipeline")
    assert not at.exception
    said = " ".join(c.value for c in at.caption).replace("\\", "")  # as the Markdown reads
    assert f"Their figures are on MNIST, ours on {tiny}:" in said
