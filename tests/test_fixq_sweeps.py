"""sweeps.model_id: the one spelling of a point's model id, used by sweeps and the dashboard's Save alike."""

from compress_engine.playground import sweeps


def test_a_sweeps_model_id_is_model_id_of_its_name_and_fingerprint(lenet300):
    """sweeps built its model id in _the_model and the dashboard's Save built its own copy: a change to one would
    store the same run twice. Both now ask sweeps.model_id."""
    fingerprint = sweeps.model_fingerprint(lenet300)
    _, key, name = sweeps._the_model(lenet300, "mine")
    assert name == "mine" and key == sweeps.model_id("mine", fingerprint) == f"mine#{fingerprint}"
    _, key, _ = sweeps._the_model("lenet-300-100", None)
    assert key.startswith("lenet-300-100#") and key == sweeps.model_id("lenet-300-100", key.split("#")[1])
    assert sweeps.model_id("mine", fingerprint, "abc") == f"mine#{fingerprint}+abc"
