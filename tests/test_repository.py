"""The repository as a fresh clone sees it: no path of the machine that built it, the package's
command behind ``python -m h3r``."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: an absolute home, temporary or work folder of some machine (home, root, tmp, work, Users, ...)
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:home|root|tmp|work|Users|mnt|scratch|private/var)/[\w.+-]+")


def tracked_files() -> list[Path]:
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / name for name in listing.decode().split("\0") if name]


def test_the_pattern_finds_what_it_is_for():
    slash = "/"  # the examples are spelled so that this file does not match itself
    for text in (f'"input_path": "{slash}work/main/notebooks/x.ipynb"', f"see {slash}home/alice/data",
                 f"out={slash}tmp/pytest-1/x"):
        assert MACHINE_PATH.search(text), text
    for text in ("--data-root /data", "https://example.org/home/page", "runs/smoke/x", "a/tmp/b"):
        assert not MACHINE_PATH.search(text), text


def test_no_tracked_file_holds_a_path_of_this_machine():
    found = []
    for path in tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        found += [f"{path.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
                  for m in MACHINE_PATH.finditer(text)]
    assert not found, "absolute paths of a machine in tracked files:\n" + "\n".join(found[:20])


def test_python_dash_m_h3r_is_the_h3r_command():
    result = subprocess.run([sys.executable, "-m", "h3r", "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and "eval" in result.stdout and result.stdout.startswith("usage: h3r")
    bad = subprocess.run([sys.executable, "-m", "h3r", "eval", "--run", str(REPO / "no-such-run")],
                         capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 1 and "h3r eval: error: no checkpoint at" in bad.stderr
