"""How ``make test`` spreads the suite (tests/ and the notebooks under nbval) over pytest-xdist
workers (``-n N``); the fixtures are in tests/conftest.py."""
from __future__ import annotations

import functools
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent


@functools.cache
def trains(notebook: str) -> bool:
    """Whether a notebook trains (it has a ``max_steps`` parameter): its smoke outputs then train or
    read runs under runs/smoke, which no two workers may train at once."""
    from h3r.book.runner import declared_parameters

    return "max_steps" in declared_parameters(ROOT / notebook)


def work_unit(nodeid: str) -> str:
    """The tests that must run in one worker, in order, share a unit: the cells of a notebook (one
    kernel), the notebooks that share runs/smoke, and the paper-profile check of chapter 5 with the
    chapters that read its runs back. Any other test is a unit of its own."""
    from tests.book.test_paper_profile import READ_BACK

    path, _, rest = nodeid.partition("::")
    name = Path(path).name
    if name.endswith(".ipynb"):
        return "smoke-runs" if trains(path) else path
    if name == "test_paper_profile.py" and any(f"[{stem}]" in rest for stem in READ_BACK):
        return "paper-study"
    return nodeid


def pytest_configure(config):
    """nbval compares the cells that show learned numbers within a stated tolerance
    (tests/nbval_tolerance.py).

    Each worker, and every kernel and script it starts, gets its share of the cores: torch's
    OpenMP threads spin while they wait, and N workers with a thread per core each run many times
    slower than one."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
        import torch

        torch.set_num_threads(int(threads))
    if config.pluginmanager.hasplugin("nbval"):
        from tests.nbval_tolerance import install

        install()


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # pytest-xdist is a test extra; without it the suite runs in one process
    pass
else:
    class _WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    def pytest_xdist_make_scheduler(config, log):
        return _WorkUnits(config, log)
