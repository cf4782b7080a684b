"""Profiles for the notebooks, and the runner that executes them with papermill and builds the book.

Every notebook under ``notebooks/`` has one cell tagged ``parameters``: ``profile`` plus the
settings a user may override (``None`` means "the profile's value"). The next cell defines
``PROFILES`` (name -> settings) and calls :func:`resolve`. Profiles:

``smoke``  seconds per notebook; the stored outputs that ``pytest --nbval`` checks.
``cpu``    the default of the book: the full analysis at a size 2 CPU cores finish in minutes.
``paper``  the paper's settings, for a GPU and the real datasets.

Command line (``python -m h3r.notebooks --help``)::

    python -m h3r.notebooks build --profile cpu     # execute every notebook of the book, render it
    python -m h3r.notebooks execute --profile smoke --in-place   # refresh the stored outputs
"""
from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
BOOK = REPO / "book"
BUILD = REPO / "_build"
PROFILE_NAMES = ("smoke", "cpu", "paper")
DEFAULT_PROFILE = "cpu"


# --- profiles ---------------------------------------------------------------------------------

class ParameterError(ValueError):
    """A notebook parameter (papermill ``-p``) has a wrong name, type or value."""


def resolve(profiles: dict, profile: str, **overrides) -> SimpleNamespace:
    """The settings of ``profile`` with the non-None ``overrides`` applied, checked.

    An override must name a setting of the profile and have its type; strings are parsed as
    Python literals where the profile holds a number, list or bool (so ``papermill -p strides
    "[2, 4]"`` works). Returns a namespace with ``profile`` and every setting.
    """
    if profile not in profiles:
        raise ParameterError(f"unknown profile {profile!r}; this notebook has profiles {sorted(profiles)}")
    settings = dict(profiles[profile])
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in settings:
            raise ParameterError(f"parameter {name!r} is not a setting of this notebook; "
                                 f"its settings are {sorted(settings)}")
        settings[name] = _coerce(name, value, settings[name])
    return SimpleNamespace(profile=profile, **settings)


def _coerce(name: str, value, like):
    if like is None:
        return value
    if isinstance(value, str) and not isinstance(like, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ParameterError(f"parameter {name!r}: cannot read {value!r} as a {type(like).__name__}") from None
    if isinstance(like, bool):
        ok = isinstance(value, bool)
    elif isinstance(like, (int, float)):
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and (isinstance(like, float) or float(value).is_integer()))
    elif isinstance(like, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = isinstance(value, type(like))
    if not ok:
        raise ParameterError(f"parameter {name!r} must be a {type(like).__name__} like {like!r}, got {value!r}")
    return type(like)(value) if isinstance(like, (int, float, list, tuple)) and not isinstance(like, bool) else value


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


def declared_parameters(notebook: Path) -> dict:
    """The parameters a notebook's ``parameters`` cell declares, by name."""
    import papermill

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
    :class:`NotebookFailed` naming the notebook and the cell.
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
    return time.perf_counter() - start


def stage_book(stage: Path) -> None:
    """Copy the book's sources and a local MathJax into ``stage`` (executed notebooks go in later)."""
    if stage.exists():
        shutil.rmtree(stage)
    shutil.copytree(BOOK, stage / "book", ignore=shutil.ignore_patterns("_static"))
    if (BOOK / "_static").is_dir():  # Jupyter Book includes every .css/.js of the root's _static/
        shutil.copytree(BOOK / "_static", stage / "_static")
    shutil.copy2(REPO / "_config.yml", stage / "_config.yml")
    # Not under _static/: Jupyter Book would add a <script> for every .js file found there.
    shutil.copytree(mathjax_dir(), stage / "_vendor" / "mathjax")


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
    for stem in stems:
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
    html = out / "html"
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(stage), "--toc", str(stage / "book" / "_toc.yml"),
           "--config", str(stage / "_config.yml"), "--path-output", str(out / "site"), "-W", "-n", "--keep-going"]
    print("[h3r] jupyter-book " + " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    if html.exists():
        shutil.rmtree(html)
    shutil.copytree(out / "site" / "_build" / "html", html)
    print(f"[h3r] the book is at {html / 'index.html'}")
    return html


def execute_in_place(profile: str, stems: list[str]) -> None:
    """Re-execute notebooks and store their outputs in ``notebooks/`` (for nbval: profile smoke)."""
    for stem in stems:
        tmp = BUILD / "inplace" / f"{stem}.ipynb"
        print(f"[h3r] executing notebooks/{stem}.ipynb (profile {profile})", flush=True)
        execute(NOTEBOOKS / f"{stem}.ipynb", tmp, {"profile": profile})
        shutil.move(tmp, NOTEBOOKS / f"{stem}.ipynb")


def provenance_note(cfg: SimpleNamespace, data: str, device: str = "cpu", seeds=None, **extra):
    """A Markdown line stating where the numbers above come from (profile, data, device, seeds,
    commit), for display under every table and figure of the book."""
    from IPython.display import Markdown

    from h3r.provenance import provenance

    p = provenance(device)
    seeds = seeds if seeds is not None else getattr(cfg, "seeds", [getattr(cfg, "seed", "-")])
    parts = [f"profile **{cfg.profile}**", f"data: {data}", f"device: {p['device']}",
             f"seeds: {', '.join(map(str, seeds)) if isinstance(seeds, (list, tuple)) else seeds}",
             *(f"{k}: {v}" for k, v in extra.items()), f"commit {p['commit']}", f"torch {p['torch']}"]
    return Markdown("*Provenance* — " + " · ".join(parts))


# --- checking the rendered book as a reader would ----------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=20000"]
EXTERNAL_RESOURCE = re.compile(r"""<(?:script|img|iframe)[^>]*\ssrc=["'](?:https?:)?//|"""
                               r"""<link[^>]*\shref=["'](?:https?:)?//""", re.I)


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _serve(folder: Path):
    """A loopback HTTP server for ``folder`` on a free port (fonts and scripts load as on the web)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _chromium(browser: str, *args: str, timeout: int = 120) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as profile_dir:
        run = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *args],
                             capture_output=True, text=True, timeout=timeout)
    return run.stdout


@dataclass
class PageReport:
    page: str
    screenshot: Path | None
    formulas: int
    typeset: int
    images: int
    problems: list

    @property
    def ok(self) -> bool:
        return not self.problems


def check_page(html_root: Path, page: Path, screenshots: Path | None, browser: str | None) -> PageReport:
    """Look at one built page: external requests, broken images, error outputs, and (with a
    browser) whether every formula was typeset by MathJax; save a screenshot."""
    from PIL import Image

    text = page.read_text(encoding="utf-8")
    rel = page.relative_to(html_root).as_posix()
    problems = [f"loads an external resource: {m.group(0)[:120]}" for m in EXTERNAL_RESOURCE.finditer(text)]
    if "Traceback (most recent call last)" in text or 'class="output traceback' in text:
        problems.append("shows a Python traceback")
    if re.search(r'class="[^"]*\bstderr\b', text):
        problems.append("shows output written to stderr (a warning or an error)")
    images = re.findall(r'<img[^>]*\ssrc="([^"]+)"', text)
    for src in images:
        if src.startswith("data:"):
            continue
        file = (page.parent / src.split("#")[0].split("?")[0]).resolve()
        try:
            with Image.open(file) as im:
                im.verify()
        except Exception as err:  # noqa: BLE001 - any failure to open is a broken image
            problems.append(f"image {src} cannot be displayed ({type(err).__name__})")
    formulas = len(re.findall(r'class="math notranslate nohighlight"', text))
    typeset, shot = 0, None
    if browser is not None:
        server = _serve(html_root)
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/{rel}"
            dom = _chromium(browser, "--dump-dom", url)
            typeset = len(re.findall(r"<mjx-container", dom))
            if formulas and typeset < formulas:
                problems.append(f"{formulas - typeset} of {formulas} formulas were not typeset by MathJax")
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                shot = screenshots / (rel.replace("/", "__").removesuffix(".html") + ".png")
                _chromium(browser, f"--screenshot={shot}", "--window-size=1280,2400", url)
                if not shot.is_file():
                    problems.append("no screenshot could be taken")
        finally:
            server.shutdown()
    return PageReport(rel, shot, formulas, typeset, len(images), problems)


def check_book(html_root: Path = BUILD / "html", screenshots: Path | None = BUILD / "screenshots",
               pages: list[str] | None = None) -> list[PageReport]:
    """Check every chapter page of a built book (see :func:`check_page`)."""
    browser = find_chromium()
    if browser is None:
        print("[h3r] chromium not found: checking the HTML only (apt-get install chromium to typeset-check)")
    stems = pages or [f"book/{p.stem}" for p in sorted(BOOK.glob("*.md"))] + [f"notebooks/{s}" for s in toc_notebooks()]
    files = [html_root / f"{stem}.html" for stem in stems if (html_root / f"{stem}.html").is_file()]
    return [check_page(html_root, f, screenshots, browser) for f in files]


def _parse_params(pairs: list[list[str]]) -> dict:
    return {name: value for name, value in pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m h3r.notebooks", description=__doc__.split("\n\n")[0],
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
    c = sub.add_parser("check", help="look at the built book: typeset formulas, images, errors, screenshots")
    c.add_argument("--html", type=Path, default=BUILD / "html")
    c.add_argument("--screenshots", type=Path, default=BUILD / "screenshots")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            reports = check_book(args.html, args.screenshots)
            for r in reports:
                status = "ok" if r.ok else "PROBLEMS"
                print(f"{status:8} {r.page}: {r.typeset}/{r.formulas} formulas typeset, {r.images} images"
                      + (f", screenshot {r.screenshot}" if r.screenshot else ""))
                for problem in r.problems:
                    print(f"         - {problem}")
            return 0 if reports and all(r.ok for r in reports) else 1
        if args.command == "build":
            build(args.profile, _parse_params(args.parameter), not args.no_execute, args.only, args.out)
        else:
            stems = args.stems or toc_notebooks()
            if args.in_place:
                execute_in_place(args.profile, stems)
            else:
                for stem in stems:
                    execute(NOTEBOOKS / f"{stem}.ipynb", BUILD / "executed" / f"{stem}.ipynb",
                            {"profile": args.profile, **_parse_params(args.parameter)})
    except (NotebookFailed, ParameterError, FileNotFoundError, ModuleNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"error: jupyter-book failed (exit {err.returncode}); see its output above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

