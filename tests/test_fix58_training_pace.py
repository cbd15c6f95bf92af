"""A training job on the cores the page runs leave free (issue 12's fine-tune switch): the dashboard's side of it.

The pool's pacing (jobs.spare, TRIAL_STEPS) is tested in test_jobs.py, fit's paced() and precision in test_train.py;
here: what the dashboard calls free cores, its training precision, and libgomp's idle workers given back."""

import threading

import torch

import compress_engine as ce
from compress_engine.playground import jobs
from pages import common


def test_the_cores_are_free_only_while_no_page_run_computes_and_nothing_is_computed_ahead():
    assert common._cores_free()
    with common.frame():  # a page run in progress
        assert not common._cores_free()
        with common._waiting_only():  # it only waits for its training job
            assert common._cores_free()
            with common._compute_lock:  # a run computed ahead (or the dense run warmed)
                assert not common._cores_free()
    assert common._cores_free()
    assert jobs.spare is common._cores_free  # what the training pool asks


def test_the_dashboard_trains_in_bfloat16_where_the_cpu_multiplies_it_in_hardware(monkeypatch):
    """scoped() gives every page's trained recipe common.training_precision(), which its key names; a recipe that
    trains nothing is left as it was, and keeps its key even when made from a trained one (shipped and computed-ahead
    runs stay found)."""
    assert common.training_precision() == ("bfloat16" if ce.native_bfloat16() else "float32")
    monkeypatch.setattr(common, "training_precision", lambda: "bfloat16")
    tuned = common.scoped(ce.Recipe(sparsity=0.8, prune_scope="global", finetune_epochs=1))
    assert tuned.precision == "bfloat16" and '"precision": "bfloat16"' in tuned.to_json()
    one_shot = ce.Recipe(sparsity=0.8, prune_scope="global")
    assert common.scoped(one_shot) is one_shot  # nothing trains: nothing to run in bfloat16
    assert tuned.replace(finetune_epochs=0).to_json() == one_shot.to_json()  # (its one-shot run: the same key)
    monkeypatch.setattr(common, "training_precision", lambda: "float32")
    assert common.scoped(tuned).to_json() == ce.Recipe(sparsity=0.8, prune_scope="global", finetune_epochs=1).to_json()


def test_a_thread_gives_back_its_idle_openmp_workers_and_computes_as_before():
    """jobs.release_threads: libgomp's omp_pause_resource_all on the calling thread (torch ships libgomp on Linux);
    its next parallel op makes the workers again and gives the same numbers."""
    out = {}

    def work():
        torch.set_num_threads(2)
        a = torch.randn(512, 512, generator=torch.Generator().manual_seed(0))
        out["before"] = a @ a
        out["released"] = jobs.release_threads()
        out["after"] = a @ a
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert out["released"] is True
    assert torch.equal(out["before"], out["after"])


def test_prepare_training_imports_what_the_first_optimizer_would():
    import sys
    ce.prepare_training()
    assert "torch._dynamo" in sys.modules
