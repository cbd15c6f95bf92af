"""A second tab or a student opening the teacher's link did not see a running Pipeline fine-tune or Pruning
fine-tuned curve: training() joins only a run nobody who asked for it is there for (a second student is not enrolled
in the first one's run), so the page showed its button alone, as if nothing trained. Now it shows the run, its
progress and that pressing the button follows the same run (common.watch), without joining it."""

import threading

import pytest
from test_fix51_f3_prune_curve import run_until, training
from test_fix52_teach2_pipeline_switch import blocked, fine_tuning
from test_jobs import WAIT

from compress_engine.playground import jobs
from test_app import page


@pytest.fixture(autouse=True)
def one_worker(monkeypatch):
    monkeypatch.setattr(jobs, "_pool", jobs.Pool(workers=1, threads=1))


class Teacher:
    """The teacher's tab: whoami() gives its session while `on`, then the AppTest's own again."""

    def __init__(self, monkeypatch):
        from pages import common
        self.on = True
        monkeypatch.setattr(jobs, "whoami", lambda: ("teacher tab", lambda: True) if self.on else common._whoami())




def watching(at):
    return [c.value for c in at.caption if "This run was asked for in another tab or by a student" in c.value]


def test_a_student_on_the_same_pipeline_sees_the_teachers_fine_tune(tiny, monkeypatch):
    release = threading.Event()
    teacher = Teacher(monkeypatch)
    try:
        at, job = fine_tuning(monkeypatch, release)
        teacher.on = False
        student = page("pipeline", "lenet-300-100")
        student.button(key="pipe_preset").click().run()
        assert not student.exception and not student.error
        assert watching(student), [c.value for c in student.caption]
        assert [w for w, _ in job._subs] == ["teacher tab"]  # seen, not joined: the teacher's Cancel still stops it
    finally:
        release.set()
    assert job.wait(WAIT)


def test_a_student_on_pruning_sees_the_teachers_curve_point(tiny, monkeypatch):
    release = threading.Event()
    blocked(monkeypatch, release)
    teacher = Teacher(monkeypatch)
    try:
        at = page("pruning")
        at.button(key="prune_ft_curve").click()
        run_until(at, training)
        (job,) = jobs.pool()._running
        teacher.on = False
        student = page("pruning")
        assert not student.exception and not student.error
        assert watching(student), [c.value for c in student.caption]
        assert "prune_ft_curve" in [b.key for b in student.button]  # the button follows the same run
        assert [w for w, _ in job._subs] == ["teacher tab"]
    finally:
        release.set()
    assert job.wait(WAIT)


def test_a_second_tab_on_distillation_sees_the_student_training(tiny, monkeypatch):
    """The walkthrough of 6 December: a tab training the 30-30 student, and a second tab on the same link said "Press
    Train student to train the 30-30 student… twice", with no progress (pressing it joined the same runs)."""
    release = threading.Event()
    blocked(monkeypatch, release)
    teacher = Teacher(monkeypatch)

    def students(at):
        at.select_slider(key="distill_width").set_value(30)
        at.slider(key="distill_epochs").set_value(1)
        return at

    try:
        at = students(page("distillation"))
        at.button(key="distill_train").click()
        run_until(at, training)
        (job,) = jobs.pool()._running
        teacher.on = False
        other = students(page("distillation")).run()
        assert not other.exception and not other.error
        assert watching(other), [c.value for c in other.caption]
        assert any(p.proto.text.startswith("Student without KD for ") for p in other.main
                   if type(p).__name__ == "Progress"), "no progress shown"
        assert "distill_train" in [b.key for b in other.button]  # the button follows the same runs
        assert [w for w, _ in job._subs] == ["teacher tab"]  # seen, not joined
    finally:
        release.set()
    assert job.wait(WAIT)
