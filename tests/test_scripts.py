"""The benchmark scripts, thin command lines over h3r.benchmarks, run (they are measured, not
asserted on: no timing is tested)."""
from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from h3r.benchmarks import training_main
from h3r.book.runner import REPO


@pytest.mark.parametrize("script, command", [("benchmark_codecs", "codecs"), ("benchmark_training", "training")])
def test_the_benchmark_scripts_are_the_package_commands(script, command):
    import subprocess

    shown = subprocess.run([sys.executable, str(REPO / "scripts" / f"{script}.py"), "--help"], capture_output=True,
                           text=True, check=True).stdout
    assert shown.startswith(f"usage: python -m h3r.benchmarks {command}")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_benchmark_writes_its_results(tmp_path):
    out = tmp_path / "train.json"
    result = training_main(["--backbone", "mobilenet_v2", "--width-mult", "0.5", "--input", "32", "--keypoints", "5",
                            "--batch", "2", "--steps", "1", "--warmup", "0", "--device", "cpu", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["results"] == result["results"] and len(saved["results"]) == 2  # CPU: fp32, NCHW and channels_last
    assert [r["channels_last"] for r in saved["results"]] == [False, True]
    assert saved["results"][0]["images_per_s"] > 0 and saved["settings"]["backbone"] == "mobilenet_v2"
    assert "commit" in saved["provenance"]


def test_training_loop_benchmark_times_h3r_train(tmp_path):
    out = tmp_path / "loop.json"
    result = training_main(["--loop", "smoke", "--threads", "1", "--json", str(out)])
    row = result["results"][0]
    assert row["profile"] == "smoke" and row["threads"] == 1 and row["images_per_s"] > 0
    assert row["backbone"] == "mobilenet_v2 x0.5" and row["batch"] == 16  # the smoke profile's setup
    assert json.loads(out.read_text())["results"] == result["results"]


def test_book_measurement_times_each_step_and_names_the_log_of_a_failure(tmp_path):
    timed = _load("measure_book").timed
    log = tmp_path / "make.log"
    assert timed([sys.executable, "-c", "print('built')"], tmp_path, log) >= 0
    assert log.read_text() == "built\n"
    with pytest.raises(SystemExit, match=f"failed \\(3\\); its output is in {log}"):
        timed([sys.executable, "-c", "raise SystemExit(3)"], tmp_path, log)
