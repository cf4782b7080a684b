"""``python -m h3r.book``: build, execute or check the book (see :mod:`h3r.book`)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from h3r.book.check import check_book
from h3r.book.runner import (BUILD, NOTEBOOKS, NotebookFailed, build, execute, execute_in_place, execution_order,
                             toc_notebooks)
from h3r.book.spread import SETTINGS, measure
from h3r.profiles import DEFAULT_PROFILE, PROFILE_NAMES, ParameterError


def _parse_params(pairs: list[list[str]]) -> dict:
    return {name: value for name, value in pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m h3r.book", description="Build, execute or check the book.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="execute the book's notebooks and render the book")
    b.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILE_NAMES)
    b.add_argument("--no-execute", action="store_true", help="render the stored (smoke) outputs as they are")
    b.add_argument("--only", nargs="+", metavar="STEM", help="execute only these notebooks, copy the rest")
    b.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a papermill parameter, given to every chapter that declares it, e.g. -p device cuda")
    b.add_argument("--out", type=Path, default=BUILD, help="build folder (default: _build)")
    e = sub.add_parser("execute", help="execute notebooks without rendering")
    e.add_argument("stems", nargs="*", help="notebook stems (default: all the book lists)")
    e.add_argument("--profile", default="smoke", choices=PROFILE_NAMES)
    e.add_argument("--in-place", action="store_true", help="store outputs in notebooks/ (as nbval checks them)")
    e.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    e.add_argument("--out", type=Path, default=BUILD / "executed", help="folder of the executed copies")
    s = sub.add_parser("spread", help="re-execute the learned notebooks under several kernel settings and "
                                      "record how far their numbers move (tests/nbval_tolerance.py reads it)")
    s.add_argument("--json", type=Path, required=True, help="write the measurement here")
    s.add_argument("--setting", action="append", choices=list(SETTINGS), help="only these settings (default: all)")
    s.add_argument("stems", nargs="*", help="notebook stems (default: every notebook with learned numbers)")
    c = sub.add_parser("check", help="look at the built book: typeset formulas, images, errors, screenshots")
    c.add_argument("--html", type=Path, default=BUILD / "html")
    c.add_argument("--screenshots", type=Path, default=BUILD / "screenshots")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            reports = check_book(args.html, args.screenshots)
            for r in reports:
                status = "ok" if r.ok else "PROBLEMS"
                print(f"{status:8} {r.page}: {r.typeset}/{r.formulas} formulas typeset, {r.images} images, "
                      f"{r.bytes / 1e6:.2f} MB without images"
                      + (f", screenshot {r.screenshot}" if r.screenshot else ""))
                for problem in r.problems:
                    print(f"         - {problem}")
            return 0 if reports and all(r.ok for r in reports) else 1
        if args.command == "spread":
            settings = {name: SETTINGS[name] for name in args.setting or SETTINGS}
            measure(args.json, settings, args.stems or None)
            print(f"[h3r] wrote {args.json}")
            return 0
        if args.command == "build":
            build(args.profile, _parse_params(args.parameter), not args.no_execute, args.only, args.out)
        else:
            stems = args.stems or toc_notebooks()
            if args.in_place:
                execute_in_place(args.profile, stems)
            else:
                for stem in execution_order(stems):
                    execute(NOTEBOOKS / f"{stem}.ipynb", args.out / f"{stem}.ipynb",
                            {"profile": args.profile, **_parse_params(args.parameter)})
    except (NotebookFailed, ParameterError, FileNotFoundError, ModuleNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"error: jupyter-book failed (exit {err.returncode}); see its output above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

