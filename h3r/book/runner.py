"""The book's runner: execute the notebooks with papermill under a profile, render Jupyter Book.

Every notebook under ``notebooks/`` has one cell tagged ``parameters``: ``profile`` plus the
settings a user may override (``None`` means "the profile's value", see :mod:`h3r.profiles`).
The runner refuses parameters a notebook does not declare, names the notebook and cell that
failed, and renders the book offline (local MathJax, warnings as errors).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from h3r.profiles import DEFAULT_PROFILE, ParameterError

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
BOOK = REPO / "book"
BUILD = REPO / "_build"


# --- the book's notebooks ---------------------------------------------------------------------

def toc_notebooks(toc: Path = BOOK / "_toc.yml") -> list[str]:
    """Stems of the notebooks the book lists (``notebooks/<stem>`` entries of ``_toc.yml``), in order."""
    import yaml

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                yield node["file"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    files = list(walk(yaml.safe_load(toc.read_text())))
    stems = [Path(f).with_suffix("").name for f in files if Path(f).parts[0] == "notebooks"]
    missing = [s for s in stems if not (NOTEBOOKS / f"{s}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"{toc} lists notebooks that do not exist: "
                                + ", ".join(f"notebooks/{s}.ipynb" for s in missing))
    return stems


#: what ``scripts/measure_book.py`` measured of ``make venv && make book`` in a fresh clone
MEASUREMENT = BOOK / "measurements" / "make_book.json"
def read_measurement(path: Path = MEASUREMENT) -> dict | None:
    """The recorded measurement of the default build (see :data:`MEASUREMENT`), None if there is none."""
    import json

    return json.loads(path.read_text()) if path.is_file() else None


def measured_minutes(run: dict):
    """A measurement's steps (``make venv``, each notebook, the rendering) in minutes, to 0.1, as a
    one-column DataFrame."""
    import pandas as pd

    steps = {"make venv": run["venv_seconds"],
             **{f"notebooks/{stem}": s for stem, s in run["notebook_seconds"].items()},
             "rendering (Jupyter Book)": run["render_seconds"]}
    return (pd.Series(steps, name="minutes") / 60).round(1).to_frame()


def measurement_text(run: dict) -> str:
    """A measurement in a sentence: the total, the command, and where and when it was measured
    (commit, device, time, the load average before)."""
    was = run["provenance"]
    return (f"**{run['total_seconds'] / 60:.1f} minutes** in all ({run['command']}). Measured at commit "
            f"`{was['commit']}` on {was['device']}, {was['time_utc']}; load average before "
            f"{was['load_average']['before'][0]}.")


def declared_parameters(notebook: Path) -> dict:
    """The parameters a notebook's ``parameters`` cell declares, by name: ``{name: {"default",
    "help", ...}}`` (papermill's inspection)."""
    import warnings

    import papermill
    from nbformat.validator import MissingIDFieldWarning

    with warnings.catch_warnings():  # papermill validates a copy of its own without cell ids
        warnings.simplefilter("ignore", MissingIDFieldWarning)
        return papermill.inspect_notebook(str(notebook))


def check_parameters(notebook: Path, parameters: dict) -> None:
    """Refuse parameters the notebook's ``parameters`` cell does not declare (papermill only warns)."""
    declared = declared_parameters(notebook)
    if not declared:
        raise ParameterError(f"{notebook} has no cell tagged 'parameters'")
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ParameterError(f"{notebook.name} has no parameter {', '.join(map(repr, unknown))}; "
                             f"its parameters are {', '.join(sorted(declared))}")


@dataclass
class NotebookFailed(RuntimeError):
    notebook: Path
    output: Path
    cell: int | None
    error: str

    def __str__(self) -> str:
        where = f"cell {self.cell}" if self.cell is not None else "a cell"
        return (f"notebook {self.notebook} failed in {where}: {self.error}\n"
                f"  the partly executed copy is {self.output}")


def execute(source: Path, output: Path, parameters: dict, progress: bool = True) -> float:
    """Run the notebook ``source`` with papermill into ``output``; return seconds taken.

    Runs with the repository root as working directory. A failing cell raises
    :class:`NotebookFailed` naming the notebook and the cell. The paths papermill records are
    made relative to the repository (:func:`tidy`).
    """
    import papermill

    check_parameters(source, parameters)
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(source), str(output), parameters=parameters, cwd=str(REPO),
                                   kernel_name="python3", progress_bar=progress, log_output=False)
    except papermill.PapermillExecutionError as err:
        raise NotebookFailed(source, output, err.exec_count, f"{err.ename}: {err.evalue}") from None
    finally:
        if output.is_file():
            tidy(output)
    return time.perf_counter() - start


def tidy(notebook: Path) -> None:
    """What papermill leaves that a reader should not see: the absolute ``input_path`` and
    ``output_path`` of its metadata become relative to the repository (a machine's paths stay on
    that machine), and the cell of injected parameters is removed from the book (tag
    ``remove-cell``; its values are in each table's provenance line)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key):
            path = Path(meta[key]).resolve()
            meta[key] = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, notebook)


def stage_book(stage: Path) -> None:
    """Copy the book's sources, its stylesheet and a local MathJax into ``stage`` (executed
    notebooks go in later).

    The static files go to ``_vendor/``, which ``_config.yml`` lists in ``html_static_path``,
    never to ``_static/``: Jupyter Book adds a ``<script>`` to every page for every ``.js`` under
    a book's ``_static/`` (and every static path once that folder exists), which loaded all of
    MathJax's components on every page. The pages load ``tex-chtml.js`` alone, which fetches what
    it needs, and the stylesheets named in ``html_css_files``.
    """
    if stage.exists():
        shutil.rmtree(stage)
    shutil.copytree(BOOK, stage / "book", ignore=shutil.ignore_patterns("_static"))
    shutil.copytree(BOOK / "_static", stage / "_vendor")
    shutil.copytree(mathjax_dir(), stage / "_vendor" / "mathjax")
    shutil.copy2(REPO / "_config.yml", stage / "_config.yml")
    shutil.copytree(REPO / "examples", stage / "examples")  # chapter 11 includes its script


def mathjax_dir() -> Path:
    """MathJax 3's ``es5`` folder as shipped by the ``django-static-mathjax`` wheel (no CDN)."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("MathJax is not installed: pip install 'django-static-mathjax>=3.2,<4'")
    es5 = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax's tex-chtml.js not found under {es5}")
    return es5


def execution_order(stems: list[str]) -> list[str]:
    """The book's notebooks in the order they run: the table of contents', except that a page
    that summarises the others (metadata ``h3r.summarizes``, the findings page) runs after them."""
    import nbformat

    def summarizes(stem: str) -> bool:
        return bool(nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4).metadata.get("h3r", {}).get("summarizes"))

    return sorted(stems, key=summarizes)  # stable: the others keep their order


def build(profile: str = DEFAULT_PROFILE, parameters: dict | None = None, execute_notebooks: bool = True,
          only: list[str] | None = None, out: Path = BUILD) -> Path:
    """Execute the book's notebooks under ``profile`` and render the book; return the HTML folder.

    With ``execute_notebooks=False`` the stored notebooks (their ``smoke`` outputs) are rendered
    as they are: quick, for checking the rendering itself.
    """
    stems = toc_notebooks()
    declared = {stem: declared_parameters(NOTEBOOKS / f"{stem}.ipynb") for stem in stems}
    unused = sorted(set(parameters or {}) - set().union(*declared.values()))
    if unused:
        raise ParameterError(f"no notebook of the book has the parameter(s) {unused}")
    stage = out / "src"
    stage_book(stage)
    timings = {}
    for stem in execution_order(stems):
        target = stage / "notebooks" / f"{stem}.ipynb"
        if execute_notebooks and (only is None or stem in only):
            print(f"[h3r] executing notebooks/{stem}.ipynb (profile {profile})", flush=True)
            # a parameter given for the whole book goes to the chapters that declare it
            mine = {k: v for k, v in (parameters or {}).items() if k in declared[stem]}
            timings[stem] = execute(NOTEBOOKS / f"{stem}.ipynb", target, {"profile": profile, **mine})
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(NOTEBOOKS / f"{stem}.ipynb", target)
    for stem, seconds in timings.items():
        print(f"[h3r] {stem}: {seconds:.0f} s")
    if timings:
        record_timings(out / "timings.json", profile, timings)
    html = out / "html"
    if (out / "site").exists():  # Sphinx rebuilds only what it sees change, and a template or a
        shutil.rmtree(out / "site")  # stylesheet is not seen: every build starts clean
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(stage), "--toc", str(stage / "book" / "_toc.yml"),
           "--config", str(stage / "_config.yml"), "--path-output", str(out / "site"), "-W", "-n", "--keep-going"]
    print("[h3r] jupyter-book " + " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    if html.exists():
        shutil.rmtree(html)
    shutil.copytree(out / "site" / "_build" / "html", html)
    print(f"[h3r] the book is at {html / 'index.html'}")
    return html


def record_timings(path: Path, profile: str, timings: dict[str, float]) -> None:
    """Write how long each notebook took (seconds) with the build's provenance to ``path``:
    ``make book`` leaves ``_build/timings.json``, which the reproduce chapter can quote."""
    from h3r.provenance import pick_device, provenance, write_json_atomic

    record = {"provenance": provenance(pick_device("auto"), profile=profile, cpu_count=os.cpu_count()),
              "notebook_seconds": {stem: round(seconds, 1) for stem, seconds in timings.items()},
              "total_notebook_seconds": round(sum(timings.values()), 1)}
    write_json_atomic(path, record)


def execute_in_place(profile: str, stems: list[str]) -> None:
    """Re-execute notebooks and store their outputs in ``notebooks/`` (for nbval: profile smoke)."""
    for stem in execution_order(stems):
        tmp = BUILD / "inplace" / f"{stem}.ipynb"
        print(f"[h3r] executing notebooks/{stem}.ipynb (profile {profile})", flush=True)
        execute(NOTEBOOKS / f"{stem}.ipynb", tmp, {"profile": profile})
        shutil.move(tmp, NOTEBOOKS / f"{stem}.ipynb")
