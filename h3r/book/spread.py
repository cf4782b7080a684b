"""How far the stored smoke outputs' learned numbers move from machine to machine.

The last digits of a training run depend on the kernels that compute it: ATen's own (chosen by
``ATEN_CPU_CAPABILITY``: default, avx2, avx512), oneDNN's convolutions (chosen by the CPU it
finds, capped by ``ONEDNN_MAX_CPU_ISA``) and the thread count. :func:`measure` re-executes the
notebooks that show learned numbers (cells tagged ``learned-numbers``) under each of
:data:`SETTINGS`, each in a fresh process with fresh runs, and records every output of those cells
beside the stored one. ``tests/nbval_tolerance.py`` derives its tolerance from that record, and
``tests/test_nbval_tolerance.py`` holds every recorded output to it::

    python -m h3r.book spread --json book/measurements/kernel_spread.json
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from h3r.book.runner import NOTEBOOKS, REPO, execution_order

#: the tag of a cell whose outputs show learned numbers (as ``tests/nbval_tolerance.py`` reads it)
TAG = "learned-numbers"
#: name -> the environment that selects the kernels (on top of the machine's default); each runs
#: the notebooks as ``make test`` does with one worker per core (one thread) or in one process
SETTINGS = {
    "default": {},  # the machine's own kernels, one process with a thread per core
    "1-thread": {"OMP_NUM_THREADS": "1"},  # as a make test worker on 2 cores
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},  # ATen without SIMD
    "onednn-avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "onednn-sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "ci": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "SSE41"},  # what .ci/run sets
}


def learned_notebooks() -> list[str]:
    """Stems of the notebooks with at least one tagged cell, in the order the book executes them."""
    stems = [p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb")) if tagged_outputs(p)]
    return execution_order(stems)


def tagged_outputs(notebook: Path) -> list[dict]:
    """Every output of the tagged cells of ``notebook``, in order: ``{"cell": index, "output":
    index, "key": mimetype or "text", "text": str}`` (images are skipped: nbval does not compare
    them)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    found = []
    for i, cell in enumerate(cells):
        if TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        for j, out in enumerate(cell.get("outputs", [])):
            items = {"text": out["text"]} if "text" in out else out.get("data", {})
            for key, text in items.items():
                if key.startswith("image/"):
                    continue
                found.append({"cell": i, "output": j, "key": key,
                              "text": "".join(text) if isinstance(text, list) else text})
    return found


def same_as(output: dict, stored: dict) -> dict:
    """``output`` as the record keeps it: without its text where the text is the stored one's
    (``"same": true``), so that the record holds what moved."""
    return {**{k: v for k, v in output.items() if k != "text"}, "same": True} if output == stored else output


def cpu_flags() -> list[str]:
    """The vector extensions this CPU reports (Linux), for the record."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return sorted({f for f in flags.split(":")[1].split() if f.startswith(("avx", "sse4", "amx", "fma"))})


def execute_under(setting: dict, stems: list[str], out: Path) -> None:
    """Execute ``stems`` (profile smoke) into ``out/notebooks`` in a fresh process whose runs go to
    ``out/runs`` (nothing read back), with the kernels ``setting`` selects."""
    env = {**os.environ, "H3R_RUNS": str(out / "runs"), **setting}
    cmd = [sys.executable, "-m", "h3r.book", "execute", *stems, "--profile", "smoke", "--out", str(out / "notebooks")]
    log = out / "execute.log"
    out.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        if subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT).returncode:
            raise RuntimeError(f"executing the notebooks under {setting} failed; see {log}")


def measure(path: Path, settings: dict[str, dict] = SETTINGS, stems: list[str] | None = None, progress=print) -> dict:
    """Execute the learned notebooks under each setting and write the record to ``path`` (JSON,
    atomically, after each setting): the stored outputs, each setting's outputs beside them (an
    output equal to the stored one as ``"same": true``, :func:`same_as`), the CPU and the
    provenance. Returns the record."""
    from h3r.provenance import provenance, write_json_atomic

    stems = stems or learned_notebooks()
    stored = {stem: tagged_outputs(NOTEBOOKS / f"{stem}.ipynb") for stem in stems}
    record = {"provenance": {**provenance("cpu"), "cpu_flags": cpu_flags(), "cpu_count": os.cpu_count()},
              "settings": settings, "stored": stored, "outputs": {}}
    scratch = Path(tempfile.mkdtemp(prefix="h3r-spread-"))
    try:
        for name, env in settings.items():
            progress(f"[h3r] executing {len(stems)} notebooks under {name}", flush=True)
            folder = scratch / str(len(record["outputs"]))
            execute_under(env, stems, folder)
            executed = {stem: tagged_outputs(folder / "notebooks" / f"{stem}.ipynb") for stem in stems}
            record["outputs"][name] = {stem: [same_as(o, s) for o, s in zip(outputs, stored[stem])]
                                       for stem, outputs in executed.items()}
            write_json_atomic(path, record)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return record
