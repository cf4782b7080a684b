"""The rendered book, looked at as a reader would: headless Chromium over a loopback server.

Each page is checked for requests to the network, broken images, tracebacks and stderr outputs,
and (with a browser) whether MathJax typeset every formula and whether every table and figure fits
the text column; a screenshot is saved per page.
"""
from __future__ import annotations

import html as html_escapes
import json
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
    """A loopback HTTP server for ``folder`` on a free port (fonts and scripts load as on the web).
    A page asked for with ``?h3r-measure`` comes with :data:`MEASURE_JS` run in it (see :func:`render_page`)."""
    import functools
    import http.server
    import threading
    from urllib.parse import unquote, urlsplit

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urlsplit(self.path)
            file = folder / unquote(url.path).lstrip("/")
            if MEASURE_QUERY not in url.query.split("&") or file.suffix != ".html" or not file.is_file():
                return super().do_GET()
            page = file.read_text(encoding="utf-8")
            script = f"<script>{MEASURE_JS}</script>"
            at = page.lower().rfind("</body>")
            body = (page[:at] + script + page[at:] if at >= 0 else page + script).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

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


# --- tables and figures wider than the text column ---------------------------------------------

#: the browser window of the checks (the screenshots and the measurements)
WINDOW = (1280, 2400)
#: the width of the text column (``.bd-article``'s content box) of the default sphinx-book-theme
#: in a 1280-px window, for reference: the check measures it on each page
COLUMN_PX = 688
#: the point size of the book's legend text and its figures' dpi (:func:`h3r.viz.book_style`): a
#: problem says how many px that text renders at in a figure scaled down
_LEGEND_PT, _DPI = 10, 100
MEASURE_QUERY = "h3r-measure"
#: run in a page served with ``?h3r-measure``: opens every collapsed output, then writes the width of
#: the text column, of every table (and of every output without one) against the width it is shown
#: in, and of every image against the width it was made for, as JSON into ``<pre id="h3r-measure">``
MEASURE_JS = r"""(function () {
  function text(el) { return (el ? el.textContent : "").replace(/\s+/g, " ").trim(); }
  function inner(el) {
    var s = getComputedStyle(el);
    return el.clientWidth - parseFloat(s.paddingLeft || 0) - parseFloat(s.paddingRight || 0);
  }
  function width(el) { return Math.max(el.scrollWidth, el.getBoundingClientRect().width); }
  function section(el) {  // the title of the section el is in
    var s = el.closest("section"), h = s && s.querySelector("h1, h2, h3, h4");
    return h ? text(h).replace(/#$/, "").trim() : "";
  }
  document.querySelectorAll("img[loading]").forEach(function (im) { im.loading = "eager"; });
  function measure() {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
    document.querySelectorAll(".toggle-hidden").forEach(function (e) { e.classList.remove("toggle-hidden"); });
    var article = document.querySelector(".bd-article") || document.querySelector("main") || document.body;
    var column = inner(article);
    function shownIn(el) {  // the content width of the box that clips or scrolls el: at most the column
      for (var p = el.parentElement; p && p !== article; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== "visible") return Math.min(inner(p), column);
      }
      return column;
    }
    var out = {column: column, tables: [], images: []};
    article.querySelectorAll("table").forEach(function (t, i) {
      var heads = Array.prototype.map.call(
        t.querySelectorAll("thead th, tr:first-child > th, tr:first-child > td"), text);
      out.tables.push({kind: "table", index: i + 1, caption: text(t.querySelector("caption")),
                       header: heads.filter(Boolean).slice(0, 3), section: section(t),
                       width: width(t), visible: shownIn(t)});
    });
    var outputs = Array.prototype.filter.call(article.querySelectorAll(".cell_output, div.output"), function (o) {
      return !o.parentElement.closest(".cell_output, div.output");
    });
    outputs.forEach(function (o, i) {  // an output without a table or image: its widest text
      if (o.querySelector("table, img")) return;
      var boxes = [o].concat(Array.prototype.slice.call(o.querySelectorAll("pre")));
      var over = boxes.map(function (e) { return e.scrollWidth - e.clientWidth; });
      var e = boxes[over.indexOf(Math.max.apply(null, over))];
      out.tables.push({kind: "output", index: i + 1, caption: "", header: [text(o).slice(0, 40)],
                       section: section(o), width: e.scrollWidth, visible: e.clientWidth});
    });
    article.querySelectorAll("img").forEach(function (im, i) {
      if (!im.naturalWidth) return;  // not loaded: reported as a broken image
      var attr = im.getAttribute("width") || "";  // the width it was made for (a retina PNG: half its pixels)
      out.images.push({index: i + 1, alt: im.getAttribute("alt") || "", src: im.getAttribute("src") || "",
                       section: section(im),
                       width: /^\d+(\.\d+)?(px)?$/.test(attr) ? parseFloat(attr) : im.naturalWidth,
                       natural: im.naturalWidth, shown: im.getBoundingClientRect().width});
    });
    var pre = document.getElementById("h3r-measure") || document.body.appendChild(document.createElement("pre"));
    pre.id = "h3r-measure";
    pre.hidden = true;
    pre.textContent = JSON.stringify(out);
  }
  window.addEventListener("load", function () {
    measure();
    var mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
    if (mj) mj.then(measure);
    setTimeout(measure, 3000);
  });
})();"""
_MEASURED = re.compile(r'<pre id="h3r-measure"[^>]*>(.*?)</pre>', re.S)


def _name(item: dict, kind: str) -> str:
    """How a problem names a measured table or image: its number on the page, its caption, first
    header cells, alt text or file, and the section it is in."""
    alt, src = item.get("alt", ""), item.get("src", "").split("?")[0].rsplit("/", 1)[-1]
    cells = " | ".join(c for c in item.get("header", []) if c)
    label = item.get("caption") or cells or (alt if alt and not alt.endswith(src) else "")
    label = repr(label[:70]) if label else (src[:12] + "…" + src[-4:] if len(src) > 24 else src)
    where = f" in section {item['section'][:60]!r}" if item.get("section") else ""
    return f"{kind} {item.get('index', '?')} ({label}{where})"


def width_problems(measured: dict) -> list[str]:
    """The problems of one page's measured widths (as :data:`MEASURE_JS` writes them, in CSS px):
    a table (or a cell output) wider than the box it is shown in, at most the text column, has
    columns hidden behind a horizontal scrollbar; an image made wider than the column is scaled
    down to fit it, and its text with it. ``measured`` = ``{"column": 688, "tables": [{"index",
    "caption", "header", "width", "visible"}, ...], "images": [{"index", "alt", "src", "width",
    "shown"}, ...]}`` (``kind`` "output" marks a cell output; ``shown`` and ``visible`` are optional)."""
    column = float(measured.get("column") or COLUMN_PX)
    problems = []
    for item in measured.get("tables", []):
        visible = min(float(item.get("visible") or column), column)
        width = float(item["width"])
        if width > visible + 1:
            what = _name(item, "cell output" if item.get("kind") == "output" else "table")
            problems.append(f"{what} is {width:.0f} px wide in a {visible:.0f}-px text column: "
                            f"{width - visible:.0f} px of it hide behind a horizontal scrollbar")
    for item in measured.get("images", []):
        width = float(item["width"])
        if width > column + 1:
            shown = min(float(item.get("shown") or column), column)
            shrink = width / shown
            what = _name(item, "figure")
            problems.append(
                f"{what} is {width:.0f} px wide, wider than the {column:.0f}-px text column: shown at {shown:.0f} px, "
                f"its text shrinks {shrink:.2f}x ({_LEGEND_PT}-pt labels render at "
                f"{_LEGEND_PT / 72 * _DPI / shrink:.1f} px); keep it within {column:.0f} px: at {_DPI} dpi, a figsize "
                f"at most h3r.viz.FIGURE_INCHES wide")
    return problems


def render_page(browser: str, url: str) -> tuple[str, dict | None]:
    """The DOM of the page at ``url`` (served by :func:`_serve`) after Chromium ran it in a
    :data:`WINDOW`, and the widths :data:`MEASURE_JS` measured there (None if it did not run)."""
    dom = _chromium(browser, "--dump-dom", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                    f"{url}{'&' if '?' in url else '?'}{MEASURE_QUERY}")
    found = _MEASURED.search(dom)
    return dom, (json.loads(html_escapes.unescape(found.group(1))) if found else None)


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
    browser) whether every formula was typeset by MathJax and every table and figure fits the text
    column (:func:`width_problems`); save a screenshot."""
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
            dom, measured = render_page(browser, url)
            typeset = len(re.findall(r"<mjx-container", dom))
            if formulas and typeset < formulas:
                problems.append(f"{formulas - typeset} of {formulas} formulas were not typeset by MathJax")
            if measured is None:
                problems.append("the widths of its tables and figures could not be measured")
            else:
                problems += width_problems(measured)
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                shot = screenshots / (rel.replace("/", "__").removesuffix(".html") + ".png")
                _chromium(browser, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", url)
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
