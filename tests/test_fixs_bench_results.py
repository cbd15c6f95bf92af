"""fixS: bench/distillation.py's results read in the playground (bench_results), not in the Distillation page."""

import os

import pytest

from compress_engine.playground import bench_results


def write(path, text):
    path.write_text(text, encoding="utf-8")


def test_the_grid_and_the_gains_of_one_teacher_and_a_file_changed_or_missing(tmp_path):
    assert bench_results.distill_grid(tmp_path, "resnet-8") == [] == bench_results.distill_gains(tmp_path, "resnet-8", 5)
    write(tmp_path / bench_results.GRID, "teacher,student,T,epochs,errors_mean\nresnet-8,30-30,,5,1504.7\n"
                                         "lenet-5,30-30,,5,1600.0\n")
    write(tmp_path / bench_results.GAIN, "study,teacher,student,epochs,best_T,paired_saved,saved_in_every_seed\n"
                                         "grid,resnet-8,30-30,5,1,7 ± 10,False\ngrid,resnet-8,100-100,5,2,9 ± 3,True\n"
                                         "grid,resnet-8,300-300,20,2,9 ± 3,True\ngrid,resnet-8,800-800,5,2,,True\n"
                                         "temperature,resnet-8,30-30,5,2,1 ± 1,True\n")
    grid = bench_results.distill_grid(tmp_path, "resnet-8")
    # the bench counted errors on Fashion-MNIST's 10,000 test images, whatever data the reader has
    assert grid == [{"teacher": "resnet-8", "student": "30-30", "T": "", "epochs": "5", "errors_mean": "1504.7",
                     "accuracy": pytest.approx(0.84953)}]
    gains = bench_results.distill_gains(tmp_path, "resnet-8", "5")
    assert [(g["student"], g["fewer_in_every_seed"]) for g in gains] == [("30-30", False), ("100-100", True)]
    grid[0]["student"] = "changed by a reader"  # each call gets its own rows
    assert bench_results.distill_grid(tmp_path, "resnet-8")[0]["student"] == "30-30"
    write(tmp_path / bench_results.GRID, "teacher,student,T,epochs,errors_mean\nresnet-8,50-50,,5,1400.0\n")
    st = (tmp_path / bench_results.GRID).stat()
    os.utime(tmp_path / bench_results.GRID, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # re-read when it changes
    assert [r["student"] for r in bench_results.distill_grid(tmp_path, "resnet-8")] == ["50-50"]
