"""Tables and figures wider than the book's text column (688 px in the default sphinx-book-theme
in the check's 1280-px window): a table hides columns behind a horizontal scrollbar, a figure is
scaled down and its text with it. The page check reports both."""
from __future__ import annotations

import pytest

from h3r.book import check

COLUMN = {"column": 688.0}


def _table(width: float, **item) -> dict:
    return {**COLUMN, "tables": [{"index": 2, "caption": "", "header": ["", "codec", "NME"], "width": width,
                                  "visible": 688.0, "section": "4.2. Training", **item}], "images": []}


def _image(width: float, **item) -> dict:
    return {**COLUMN, "tables": [], "images": [{"index": 3, "alt": "", "src": "../_images/abc.png", "width": width,
                                                "shown": min(width, 688.0), "section": "4.1. Samples", **item}]}


def test_a_table_wider_than_the_column_is_reported_with_its_widths():
    assert check.width_problems(_table(900)) == [
        "table 2 ('codec | NME' in section '4.2. Training') is 900 px wide in a 688-px text column: "
        "212 px of it hide behind a horizontal scrollbar"]
    assert check.width_problems(_table(600)) == []
    assert check.width_problems(_table(688.9)) == []  # sub-pixel widths are no overflow


def test_a_table_is_named_by_its_caption_and_measured_against_its_scrolling_box():
    [problem] = check.width_problems(_table(700, caption="Codec-only NME (%)", visible=650))
    assert problem.startswith("table 2 ('Codec-only NME (%)' in section") and "in a 650-px text column" in problem
    # a box wider than the column (a full-width container) still shows only the column
    [problem] = check.width_problems(_table(900, visible=1200))
    assert "212 px of it hide" in problem
    [problem] = check.width_problems(_table(900, kind="output", header=["WFLW: Wider Facial"], section=""))
    assert problem.startswith("cell output 2 ('WFLW: Wider Facial') is 900 px wide")


def test_a_figure_wider_than_the_column_is_reported_with_its_shrink_factor():
    [problem] = check.width_problems(_image(1240))
    assert problem.startswith("figure 3 (abc.png in section '4.1. Samples') is 1240 px wide, wider than the "
                              "688-px text column: shown at 688 px, its text shrinks 1.80x")
    assert "10-pt labels render at 7.7 px" in problem and "h3r.viz.FIGURE_INCHES" in problem
    assert check.width_problems(_image(680)) == []
    # a figure shown smaller than the column shrinks by its own width over the shown one
    [problem] = check.width_problems(_image(1000, shown=344, alt="sample grid"))
    assert "('sample grid' in section" in problem and "shrinks 2.91x" in problem


def test_the_column_defaults_to_the_theme_reference_and_long_file_names_are_shortened():
    measured = _image(700, src="../_images/" + "c426bbc0286febd31a6db7c5edf594cef1fb93c3" + ".png", section="")
    del measured["column"]
    assert check.width_problems(measured) == [
        "figure 3 (c426bbc0286f….png) is 700 px wide, wider than the 688-px text column: shown at 688 px, its text "
        "shrinks 1.02x (10-pt labels render at 13.7 px); keep it within 688 px: at 100 dpi, a figsize at most "
        "h3r.viz.FIGURE_INCHES wide"]
    assert check.COLUMN_PX == 688


@pytest.mark.browser
def test_chromium_measures_an_overflowing_table_and_an_over_wide_image(tmp_path):
    browser = check.find_chromium()
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from PIL import Image

    Image.new("RGB", (1240, 60), "white").save(tmp_path / "wide.png")
    Image.new("RGB", (680, 60), "white").save(tmp_path / "fits.png")
    cells = "".join(f"<th>column_name_{i}</th>" for i in range(12))
    page = tmp_path / "page.html"
    page.write_text(f"""<html><head><style>img {{ max-width: 100%; }}</style></head><body>
<main class="bd-article" style="width: 688px; padding: 0 20px">
<section><h2>Results</h2>
<div style="overflow-x: auto"><table><caption>Wide</caption><tr>{cells}</tr></table></div>
<div style="overflow-x: auto"><table style="width: 600px"><tr><th>narrow</th></tr></table></div>
<img alt="a wide figure" src="wide.png"><img alt="a figure that fits" src="fits.png">
</section></main></body></html>""", encoding="utf-8")
    report = check.check_page(tmp_path, page, None, browser)
    assert len(report.problems) == 2, report.problems
    table, figure = report.problems
    assert table.startswith("table 1 ('Wide' in section 'Results') is ") and "in a 688-px text column" in table
    assert figure.startswith("figure 1 ('a wide figure' in section 'Results') is 1240 px wide, wider than the "
                             "688-px text column: shown at 688 px, its text shrinks 1.80x"), figure
