"""Shared fixtures. Real annotations under ../shared/data are used when present, skipped if not."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("H3R_SHARED_DATA", REPO.parent / "shared" / "data"))
#: a git snapshot of the official repository (baoshengyu/H3R): tests that read it need this variable
OFFICIAL_SNAPSHOT_ENV = "H3R_OFFICIAL_SNAPSHOT"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real annotation samples (../shared/data); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real annotation samples not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_data() -> Path:
    """The repository's data root, which ships the 300W validation annotations (data/README.md)."""
    return REPO / "data"


@pytest.fixture(scope="session")
def official_snapshot() -> Path:
    """The official repository's git directory, from ``$H3R_OFFICIAL_SNAPSHOT``; skips when unset."""
    path = os.environ.get(OFFICIAL_SNAPSHOT_ENV)
    if not path:
        pytest.skip(f"set ${OFFICIAL_SNAPSHOT_ENV} to a git clone of baoshengyu/H3R to compare with it")
    if not Path(path).exists():
        pytest.skip(f"${OFFICIAL_SNAPSHOT_ENV} is {path}, which does not exist")
    return Path(path)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def readable_figures(monkeypatch):
    """Every figure a test makes through ``h3r.viz.<function>`` is checked, after the test, for
    what a reader trips over (:func:`h3r.viz.readability_problems`)."""
    from matplotlib.figure import Figure

    from h3r import viz

    made = []
    for name in dir(viz):
        function = getattr(viz, name)
        if callable(function) and getattr(function, "__module__", "") == viz.__name__ and \
                "Figure" in str(getattr(function, "__annotations__", {}).get("return", "")):
            def watched(*args, _function=function, **kwargs):
                result = _function(*args, **kwargs)
                if isinstance(result, Figure):
                    made.append((_function.__name__, result))
                return result
            monkeypatch.setattr(viz, name, watched)
    yield
    problems = [f"{name}: {p}" for name, fig in made for p in viz.readability_problems(fig)]
    assert not problems, "\n".join(problems)
