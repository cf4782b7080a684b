"""The runnable examples under examples/ (run in-process: the interpreter's torch is already loaded)."""
from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def own_loop():
    threads = torch.get_num_threads()
    yield load("own_training_loop")
    torch.set_num_threads(threads)  # the script sets its own


def test_own_training_loop_help(own_loop, capsys):
    with pytest.raises(SystemExit) as done:
        own_loop.main(["--help"])
    assert done.value.code == 0
    usage = capsys.readouterr().out
    assert all(option in usage for option in ("--steps", "--device", "--seed"))


@pytest.mark.slow
def test_own_training_loop_learns(own_loop, capsys):
    """A few dozen steps take the test NME from the untrained model's (decoding noise: ~100 %)
    to well below half of it; the last line is the one the book shows."""
    final = own_loop.main(["--steps", "60", "--seed", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    before, after = (re.fullmatch(rf"NME (\S+) % {what}", line) for line, what in
                     zip(lines, ("before training", "after 60 steps")))
    assert len(lines) == 2 and before and after, lines
    before, after = float(before[1]), float(after[1])
    assert math.isfinite(after) and after == pytest.approx(final, abs=0.05)
    assert before > 50  # untrained: the argmax of noise, anywhere on the map
    assert after < before / 2


def test_the_intros_library_snippet_runs_and_decodes_its_keypoint():
    intro = (EXAMPLES.parent / "book" / "intro.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", intro, flags=re.S)
    scope: dict = {}
    exec(compile(snippet, "book/intro.md", "exec"), scope)
    assert scope["target"].heatmaps.shape == (1, 1, 64, 64) and scope["target"].heatmaps.sum() == 1
    assert torch.allclose(scope["decoded"], scope["keypoints"], atol=1e-4)
