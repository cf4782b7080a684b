"""The rendered book, looked at as a reader would: headless Chromium over a loopback server.

Each page is checked for requests to the network, broken images, tracebacks and stderr outputs,
and (with a browser) whether MathJax typeset every formula; a screenshot is saved per page.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from h3r.book.runner import BOOK, BUILD, toc_notebooks


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


#: the most a page may weigh without its images: its HTML, scripts and stylesheets
MAX_PAGE_BYTES = 3_000_000
_LOADED = re.compile(r"""<script[^>]*\ssrc=["']([^"']+)["']|<link[^>]*\srel=["']stylesheet["'][^>]*\shref=["']([^"']+)["']"""
                     r"""|<link[^>]*\shref=["']([^"']+)["'][^>]*\srel=["']stylesheet["']""", re.I)


def page_weight(page: Path) -> tuple[int, list[str]]:
    """Bytes a browser loads for ``page`` besides images (the HTML, and every local script and
    stylesheet it names), and the scripts it loads. Fonts and components MathJax fetches later
    are not counted: they come only with formulas, a few kB each."""
    text = page.read_text(encoding="utf-8")
    total, scripts = len(text.encode()), []
    for match in _LOADED.finditer(text):
        src = next(g for g in match.groups() if g)
        if match.group(1):
            scripts.append(src)
        file = page.parent / src.split("#")[0].split("?")[0]
        if file.is_file():
            total += file.stat().st_size
    return total, scripts


@dataclass
class PageReport:
    page: str
    screenshot: Path | None
    formulas: int
    typeset: int
    images: int
    problems: list
    bytes: int = 0

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
    if re.search(r"<p>[^<]*\|\s*:?(?:-{3,}|—)", text):  # the --- of a header rule, maybe typeset as a dash
        problems.append("shows a Markdown table as text (a pipe in a cell, or outputs not parsed as MyST)")
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
    weight, scripts = page_weight(page)
    if weight > MAX_PAGE_BYTES:
        problems.append(f"weighs {weight / 1e6:.1f} MB without its images (at most {MAX_PAGE_BYTES / 1e6:.0f} MB)")
    mathjax = [src for src in scripts if "mathjax" in src.lower()]
    if len(mathjax) > 1:
        problems.append(f"loads {len(mathjax)} MathJax scripts, not one: {mathjax[:3]} ...")
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
    return PageReport(rel, shot, formulas, typeset, len(images), problems, weight)


def check_book(html_root: Path = BUILD / "html", screenshots: Path | None = BUILD / "screenshots",
               pages: list[str] | None = None) -> list[PageReport]:
    """Check every chapter page of a built book (see :func:`check_page`)."""
    browser = find_chromium()
    if browser is None:
        print("[h3r] chromium not found: checking the HTML only (apt-get install chromium to typeset-check)")
    stems = pages or [f"book/{p.stem}" for p in sorted(BOOK.glob("*.md"))] + [f"notebooks/{s}" for s in toc_notebooks()]
    files = [html_root / f"{stem}.html" for stem in stems if (html_root / f"{stem}.html").is_file()]
    return [check_page(html_root, f, screenshots, browser) for f in files]
