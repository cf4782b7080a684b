"""The tolerance nbval gives learned numbers (tests/nbval_tolerance.py): the last digits a machine
changes pass, a material change fails, and cells without the tag stay exact."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from tests.nbval_tolerance import NUMBER, TAG, install, snap, tolerance, unit_in_last_place, within_tolerance

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_tolerance_is_relative_plus_last_digits():
    assert unit_in_last_place("4.99") == pytest.approx(0.01)
    assert unit_in_last_place("-0.123") == pytest.approx(0.001)
    assert unit_in_last_place("1.2e-04") == pytest.approx(1e-5)
    assert tolerance("35.0") == pytest.approx(0.02 * 35 + 5 * 0.1)


@pytest.mark.parametrize("new", ["NME 35.1 % after 20 steps", "NME 34.9 % after 20 steps"])
def test_last_digit_of_a_run_passes(new):
    assert within_tolerance("NME 35.0 % after 20 steps", new)


@pytest.mark.parametrize("new", [
    "NME 37.0 % after 20 steps",      # a material change of the learned number
    "NME 35.0 % after 21 steps",      # integers are compared as text
    "NME 35.0 % after 20 epochs",     # so is every word
    "NME 35.0 % after 20 steps, 2 runs",
])
def test_material_change_fails(new):
    assert not within_tolerance("NME 35.0 % after 20 steps", new)


def test_a_padded_table_whose_column_narrows_still_agrees_but_a_verdict_does_not():
    stored = ("| claim | numbers       | verdict      |\n|:------|:--------------|:-------------|\n"
              "| flat  | -22.21 [+13.24] | within noise |")
    narrower = ("| claim | numbers      | verdict      |\n|:------|:-------------|:-------------|\n"
                "| flat  | -22.23 [+9.99] | within noise |")
    assert not within_tolerance(stored, narrower)  # 9.99 is no last digit of 13.24
    assert within_tolerance(stored, narrower.replace("+9.99", "+13.1"))
    assert not within_tolerance(stored, narrower.replace("+9.99", "+13.1").replace("within noise", "supported   "))


def test_an_interval_bound_moves_with_its_mean_and_half_width():
    """-19.41 [-32.12, -6.69] over two seeds: a mean and a half-width of 12.7 that each changed in
    their last digits move the upper bound by 0.33, 5 % of itself; the mean may not move so."""
    stored = "stride 4: -19.41 [-32.12, -6.69]; stride 8: -20.07 [-59.00, +18.87]"
    assert within_tolerance(stored, "stride 4: -19.44 [-32.53, -6.36]; stride 8: -20.07 [-59.00, +18.87]")
    assert not within_tolerance(stored, "stride 4: -19.41 [-32.12, -5.69]; stride 8: -20.07 [-59.00, +18.87]")
    assert not within_tolerance(stored, "stride 4: -20.41 [-32.12, -6.69]; stride 8: -20.07 [-59.00, +18.87]")
    assert not within_tolerance("NME 35.0 [see -6.69]", "NME 35.0 [see -6.36]")  # no interval: its own tolerance


def test_sign_and_interval_bounds():
    stored = "-3.07 [-3.50, -2.65], supported"
    assert within_tolerance(stored, "-3.08 [-3.52, -2.64], supported")
    assert not within_tolerance(stored, "-3.08 [-3.52, -2.64], not shown")
    assert not within_tolerance(stored, "+3.07 [-3.50, -2.65], supported")


def _tagged_outputs():
    """(notebook, cell index, text) of every stored text output of a tagged cell."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb["cells"]):
            if TAG not in cell.get("metadata", {}).get("tags", []):
                continue
            for out in cell.get("outputs", []):
                texts = [out.get("text")] + list(out.get("data", {}).values())
                for text in texts:
                    text = "".join(text) if isinstance(text, list) else text
                    if isinstance(text, str) and NUMBER.search(text):
                        yield path.name, i, text


def test_the_cells_that_failed_on_other_machines_are_tagged():
    tagged = {(name, i) for name, i, _ in _tagged_outputs()}
    assert {name for name, _ in tagged} >= {"00_findings.ipynb", "05_heatmap_resolution.ipynb",
                                           "06_ablations.ipynb", "07_cost.ipynb", "11_your_own_loop.ipynb"}


def _moved(stored: str, by: float) -> str:
    """The number ``stored`` (text) moved by ``by``, printed as it is printed."""
    mantissa, e, _ = stored.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    value = float(stored.replace("\u2212", "-")) + by
    text = f"{value:.{decimals}{'e' if e else 'f'}}"
    if stored[0] == "+" and value >= 0:
        text = "+" + text
    return text.replace("-", "\u2212") if stored[0] == "\u2212" else text


def test_a_perturbed_stored_number_is_caught():
    """Every stored learned output: its largest number moved by one unit in its last place
    passes; moved by 10 % plus 10 units, it fails."""
    checked = 0
    for name, i, text in _tagged_outputs():
        match = max(NUMBER.finditer(text), key=lambda m: abs(float(m.group().replace("\u2212", "-"))))
        stored, ulp = match.group(), unit_in_last_place(match.group())
        value = abs(float(stored.replace("\u2212", "-")))
        for by, agrees in ((ulp, True), (0.1 * value + 10 * ulp, False)):
            moved = text[:match.start()] + _moved(stored, by) + text[match.end():]
            assert within_tolerance(text, moved) is agrees, (name, i, stored, by)
        checked += 1
    assert checked >= 10


def _cell(tags, outputs):
    """A stand-in for nbval's cell item: what its compare_outputs reads."""
    from nbval.plugin import IPyNbCell, nocolors

    class Cell:
        compare_outputs = IPyNbCell.compare_outputs
        sanitize = IPyNbCell.sanitize

        def format_output_compare(self, key, left, right):  # nbval's report needs a pytest item
            self.comparison_traceback.append(f"{key}: {left!r} != {right!r}")

    cell = Cell()
    cell.cell = nbformat.from_dict({"metadata": {"tags": tags}, "outputs": outputs})
    cell.parent = SimpleNamespace(skip_compare=("metadata", "traceback", "image/png"), sanitize_patterns={})
    cell.colors = nocolors
    cell.config = SimpleNamespace(option=SimpleNamespace(nbdiff=False))
    return cell


def _stream(text):
    return nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": text})


@pytest.mark.parametrize("tags, new, agrees", [
    ([TAG], "NME 35.1 %\n", True),
    ([TAG], "NME 39.0 %\n", False),
    ([], "NME 35.1 %\n", False),  # untagged cells stay exact
    ([], "NME 35.0 %\n", True),
])
def test_nbval_compares_tagged_cells_within_tolerance(tags, new, agrees, capsys):
    install()
    stored = [_stream("NME 35.0 %\n")]
    assert _cell(tags, stored).compare_outputs([_stream(new)], stored) is agrees


def test_snap_keeps_what_does_not_pair_up():
    stored = {"text/plain": "a 1.00", "text/html": "<b>1.00</b>"}
    assert snap(stored, {"text/plain": "a 1.01", "text/html": "<i>1.00</i>"}) == \
        {"text/plain": "a 1.00", "text/html": "<i>1.00</i>"}
    assert snap(["x 1.0\n", "y 2.0\n"], ["x 1.01\n", "y 2.01\n"]) == ["x 1.0\n", "y 2.0\n"]
    assert snap(["x 1.0\n"], ["x 1.0\n", "z\n"]) == ["x 1.0\n", "z\n"]
