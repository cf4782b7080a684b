"""Where a number came from: commit, device, library versions, time; and atomic result files."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch

#: the checkout h3r runs from, where ``git`` finds the commit
CHECKOUT = Path(__file__).resolve().parents[1]


def git_commit(short: bool = True) -> str:
    """The checked-out commit, with ``+dirty`` when tracked files differ; ``unknown`` outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short" if short else "--verify", "HEAD"], cwd=CHECKOUT,
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=CHECKOUT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: str | torch.device = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def provenance(device: str | torch.device = "cpu", **extra) -> dict:
    """A dict to store beside every result: commit, device, versions, UTC time, plus ``extra``."""
    return {
        "commit": git_commit(),
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "time_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **extra,
    }


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a fresh temporary path beside ``path`` to write to; when the block ends it is synced
    and renamed onto ``path`` (readers see the old file or the new one, never a part of either);
    if the block raises, it is removed. Every call gets its own temporary file, so concurrent
    writers of the same result (DDP ranks, two notebooks) never write into each other's.

        with atomic_path(run_dir / "checkpoint.pt") as tmp:
            torch.save(state, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, obj) -> Path:
    """Write JSON so that a crash never leaves a half-written file (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_jsonable))
    return Path(path)


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> the first CUDA device if there is one, else the CPU; other names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but torch sees no CUDA device "
                           f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use 'cpu' or 'auto'")
    return device
