"""Time the README's first command on a fresh clone: ``make venv`` then ``make book``.

    python scripts/measure_book.py --json book/measurements/make_book.json

Clones this repository's HEAD into a temporary folder (nothing of this checkout is reused: no
venv, no runs, no render cache), runs the two steps, and writes their wall times, each
notebook's time (``_build/timings.json``) and the provenance. The reproduce chapter quotes the
file. Takes as long as the book itself.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from h3r.provenance import provenance, write_json_atomic  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path, log: Path) -> float:
    """Run ``cmd`` in ``cwd`` with its output appended to ``log``; return its wall seconds."""
    start = time.perf_counter()
    with log.open("a") as out:
        result = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}); its output is in {log}")
    return time.perf_counter() - start


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--json", type=Path, required=True, help="write the measurement here")
    p.add_argument("--profile", default="cpu", help="the book's profile (make book PROFILE=...)")
    p.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = p.parse_args(argv)
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                      capture_output=True, text=True).stdout.strip():
        print("warning: uncommitted changes are not measured: the clone is of HEAD", file=sys.stderr)
    folder = Path(tempfile.mkdtemp(prefix="h3r-book-"))
    clone, log = folder / "h3r", folder / "make.log"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    print(f"timing make venv and make book in {clone} (output: {log})", flush=True)
    load_before = os.getloadavg()
    venv = timed(["make", "venv"], clone, log)
    book = timed(["make", "book", f"PROFILE={args.profile}"], clone, log)
    timings = json.loads((clone / "_build" / "timings.json").read_text())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                            text=True, check=True).stdout.strip()
    record = {
        "provenance": {**provenance("cpu"), "commit": commit, "cpu_count": os.cpu_count(),
                       "load_average": {"before": [round(v, 2) for v in load_before],
                                        "after": [round(v, 2) for v in os.getloadavg()]}},
        "command": f"make venv && make book PROFILE={args.profile}, in a fresh clone",
        "venv_seconds": round(venv, 1),
        "book_seconds": round(book, 1),
        "total_seconds": round(venv + book, 1),
        "notebook_seconds": timings["notebook_seconds"],
        "render_seconds": round(book - timings["total_notebook_seconds"], 1),
    }
    write_json_atomic(args.json, record)
    print(json.dumps({k: v for k, v in record.items() if k.endswith("seconds")}, indent=1))
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
