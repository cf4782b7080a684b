"""The rendered book, looked at as a reader would: it builds offline with warnings as errors,
requests nothing from the network, and (with Debian's chromium) typesets every formula."""
from __future__ import annotations

import re

import pytest

from h3r.book import check, runner

#: a chapter with formulas and figures (the findings page, first in the book, has no formulas)
MATH_PAGE = "01_quantization_error"


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    """The book rendered from the stored (smoke) outputs of the notebooks."""
    return runner.build(execute_notebooks=False, out=tmp_path_factory.mktemp("book"))


def test_book_has_every_chapter(html):
    for stem in runner.toc_notebooks():
        assert (html / "notebooks" / f"{stem}.html").is_file(), stem
    assert (html / "book" / "intro.html").is_file()


def test_every_page_loads_one_mathjax_and_weighs_at_most_3_mb(html):
    for page in html.rglob("*.html"):
        weight, scripts = check.page_weight(page)
        assert [s for s in scripts if "mathjax" in s.lower()] in ([], [s for s in scripts if "tex-chtml.js" in s]), page
        assert weight <= check.MAX_PAGE_BYTES, (page.relative_to(html), weight)
    weight, scripts = check.page_weight(html / "notebooks" / f"{MATH_PAGE}.html")
    assert len([s for s in scripts if "tex-chtml.js" in s]) == 1 and weight > 100_000  # the theme, MathJax


def test_mathjax_is_served_locally(html):
    page = (html / "book" / "intro.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, re.I)
    assert scripts and all(s.startswith("../_static/mathjax/") for s in scripts), scripts
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


def test_no_page_requests_anything_from_the_network(html):
    for page in html.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        found = check.EXTERNAL_RESOURCE.findall(text)
        assert not found, f"{page.relative_to(html)} loads {found[:3]}"


def test_chapters_have_no_errors_or_broken_images(html):
    reports = check.check_book(html, screenshots=None)
    assert len(reports) >= 1 + len(runner.toc_notebooks())
    bad = {r.page: r.problems for r in reports if r.problems and not any("formulas" in p for p in r.problems)}
    assert not bad, bad


def test_the_findings_table_renders_as_a_table(html):
    page = (html / "notebooks" / "00_findings.html").read_text(encoding="utf-8")
    assert "<table" in page and "<th" in page and "verdict" in page


def test_a_markdown_table_left_as_text_is_a_problem(tmp_path):
    def problems(body: str) -> list[str]:
        page = tmp_path / "page.html"
        page.write_text(f"<html><body>{body}</body></html>", encoding="utf-8")
        return check.check_page(tmp_path, page, None, None).problems

    assert problems("<p>| claim | verdict | |:——| |:---| | a | b |</p>") == [
        "shows a Markdown table as text (a pipe in a cell, or outputs not parsed as MyST)"]
    assert problems("<table><tr><td>a</td></tr></table><p>the mean |x - y| of a --- b</p>") == []


@pytest.mark.browser
def test_formulas_are_typeset_and_figures_render_in_chromium(html, tmp_path):
    if check.find_chromium() is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    page = html / "notebooks" / f"{MATH_PAGE}.html"
    report = check.check_page(html, page, tmp_path, check.find_chromium())
    assert report.formulas > 5 and report.images >= 1, report
    assert report.typeset >= report.formulas, report.problems
    assert report.ok, report.problems
    from PIL import Image, ImageStat

    with Image.open(report.screenshot) as shot:
        assert shot.size == (1280, 2400)
        assert max(ImageStat.Stat(shot.convert("L")).stddev) > 20, "the screenshot is blank"
