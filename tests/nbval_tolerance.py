"""Learned numbers in the stored notebook outputs, compared within a measured tolerance.

The last digits of a training run depend on the kernels that compute it: ATen's (by instruction
set), oneDNN's convolutions (by the CPU it finds) and the thread count. A notebook cell whose
outputs show such numbers carries the tag :data:`TAG`. For those cells nbval still compares every
output, but each decimal number of the new output that lies within its tolerance of the stored
one is taken as the stored one first; every other character must match as before (words,
verdicts, counts, integers, the shape of every table). Cells without the tag are compared
exactly: codec round trips, closed forms, parameter and MAC counts.

**The rule.** A number's tolerance follows what it is:

* a learned **value** ``x`` (an NME, a mass, a term): ``RELATIVE × |x|``;
* a **derived** number, printed with its terms (``<span title="75.54 − 75.89">-0.34</span>``,
  :func:`h3r.stats.terms_text`): the tolerance its terms give it, never its own size. A
  difference ``a − b`` moves by up to ``RELATIVE × (|a| + |b|)``; a ratio ``a / b`` by up to
  ``2 × RELATIVE × |a / b|``;
* an interval **bound** of ``mean [low, high]``: the mean's tolerance plus ``RELATIVE`` × the
  half-width (a bound is mean ± half-width, and both move);
* a **spread** after ``±``: its mean's tolerance (it is computed from the same terms);

each plus one unit in the last place the stored number prints (rounding: "4.99" stands for any
value in [4.985, 4.995]). ``RELATIVE`` is :data:`MARGIN` times the largest relative move of a
learned value measured between the stored outputs and their re-execution under every kernel
setting of :data:`MEASUREMENT` (``python -m h3r.book spread``), the rounding taken off.

A material change still fails: a value outside the measured spread, a verdict that flips, a row
that appears. ``tests/test_nbval_tolerance.py`` shows both sides, and holds every output the
measurement recorded to this rule.
"""
from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

#: the tag of a cell whose outputs show learned numbers
TAG = "learned-numbers"
#: the measured spread: the stored outputs re-executed under several kernel settings
MEASUREMENT = Path(__file__).resolve().parents[1] / "book" / "measurements" / "kernel_spread.json"
#: how many times the largest measured relative move a value may move: the settings measured ran
#: on one CPU, and a CPU with other caches or AVX-512 blocks its convolutions otherwise again
MARGIN = 4
#: units in the last printed place every number may differ by: its rounding
ULPS = 1

# a decimal number (with a point), its sign and exponent, not inside a word (a commit, "x0.5");
# integers are compared as text
NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?\d+\.\d+(?:[eE][-+]?\d+)?(?!\w|\.\d)")
# a derived number with its terms (h3r.stats.terms_text)
DERIVED = re.compile(r'<span title="(?P<first>[^ "]+) (?P<operator>[−/]) (?P<second>[^ "]+)">(?P<shown>[^<]*)</span>')
# a Markdown table pads its columns to the widest cell, with spaces and with the dashes of the
# rule under its header, so a number one character shorter moves the layout of a whole column
PADDING = re.compile(r"[ \t]+|-{3,}")
TAGS = re.compile(r"<[^>]*>")


def _value(text: str) -> float:
    return float(text.replace("\u2212", "-"))


def unit_in_last_place(text: str) -> float:
    """The step of the last digit ``text`` prints: 0.01 for "4.99", 1e-5 for "1.2e-04"."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


# --- what each number is -------------------------------------------------------------------------

def kinds(text: str) -> list[dict]:
    """Each decimal number of ``text``, in order: ``{"text", "kind", ...}`` with kind ``value``,
    ``derived`` (with ``operator`` and the indices of its ``terms``), ``bound`` (with the index of
    its ``mean`` and the ``half`` width) or ``spread`` (with the index of its ``mean``)."""
    matches = list(NUMBER.finditer(text))
    numbers = [{"text": m.group(), "kind": "value"} for m in matches]
    at = {m.start(): i for i, m in enumerate(matches)}
    for d in DERIVED.finditer(text):
        first, second = at.get(d.start("first")), at.get(d.start("second"))
        shown = [i for i, m in enumerate(matches) if d.start("shown") <= m.start() < d.end("shown")]
        if first is not None and second is not None and len(shown) == 1:
            numbers[shown[0]].update(kind="derived", operator=d.group("operator"), terms=(first, second))
    between = [TAGS.sub("", t) for t in NUMBER.split(text)]  # between[k] precedes number k
    for k in range(len(numbers) - 2):
        if between[k + 1].strip() == "[" and between[k + 2].strip() == "," and between[k + 3].lstrip().startswith("]"):
            half = abs(_value(numbers[k + 2]["text"]) - _value(numbers[k + 1]["text"])) / 2
            for bound in (k + 1, k + 2):
                numbers[bound].update(kind="bound", mean=k, half=half)
    for k in range(1, len(numbers)):
        if between[k].strip() == "±" and numbers[k]["kind"] == "value":
            numbers[k].update(kind="spread", mean=k - 1)
    return numbers


def tolerances(text: str, relative: float | None = None) -> list[float]:
    """How far each decimal number of the stored ``text`` may move, by the module's rule."""
    relative = RELATIVE if relative is None else relative
    numbers = kinds(text)

    def moves(k: int) -> float:  # without the rounding of the printed number
        n = numbers[k]
        x = abs(_value(n["text"]))
        if n["kind"] == "derived":
            a, b = (abs(_value(numbers[t]["text"])) for t in n["terms"])
            return relative * (a + b) if n["operator"] == "−" else 2 * relative * x
        if n["kind"] == "bound":
            return moves(n["mean"]) + relative * n["half"]
        if n["kind"] == "spread":
            return moves(n["mean"])
        return relative * x

    return [moves(k) + ULPS * unit_in_last_place(n["text"]) for k, n in enumerate(numbers)]


# --- the measured spread --------------------------------------------------------------------------

def _layout_free(text: str) -> str:
    return PADDING.sub(lambda m: "-" * 3 if m.group().startswith("-") else " ", text)


def same_words(stored: str, new: str) -> bool:
    """Whether two texts agree but for their decimal numbers (runs of padding count as one)."""
    return [_layout_free(t) for t in NUMBER.split(stored)] == [_layout_free(t) for t in NUMBER.split(new)]


def value_moves(measurement: dict, sanitize=lambda s: s) -> list[dict]:
    """Every learned value of the measurement's stored outputs that moved under a setting, with
    how far relative to itself, the rounding of its printing taken off: ``{"setting", "notebook",
    "cell", "stored", "new", "relative"}``. Outputs whose words differ are left out (the test of
    the measurement reports them)."""
    found = []
    for setting, notebooks in measurement["outputs"].items():
        for stem, outputs in notebooks.items():
            for old, new in zip(measurement["stored"][stem], outputs):
                a, b = sanitize(old["text"]), sanitize(new.get("text", old["text"]))
                if not same_words(a, b):
                    continue
                for n, moved in zip(kinds(a), NUMBER.findall(b)):
                    x, y = _value(n["text"]), _value(moved)
                    beyond = abs(x - y) - ULPS * unit_in_last_place(n["text"])
                    if n["kind"] == "value" and beyond > 1e-12 and x != 0:
                        found.append({"setting": setting, "notebook": stem, "cell": old["cell"], "stored": n["text"],
                                      "new": moved, "relative": beyond / abs(x)})
    return found


@functools.cache
def measured() -> dict:
    """:data:`MEASUREMENT`, read."""
    return json.loads(MEASUREMENT.read_text())


def derived_relative(measurement: dict, sanitize=lambda s: s) -> float:
    """:data:`MARGIN` times the largest relative move of a learned value in ``measurement``,
    rounded up to two significant digits."""
    largest = max((m["relative"] for m in value_moves(measurement, sanitize)), default=0.0)
    if largest == 0:
        raise ValueError(f"{MEASUREMENT} records no learned value that moved: re-measure with "
                         "python -m h3r.book spread")
    scale = 10 ** (math.floor(math.log10(MARGIN * largest)) - 1)
    return math.ceil(MARGIN * largest / scale) * scale


@functools.cache
def _sanitize_patterns() -> list[tuple[re.Pattern, str]]:
    """The replacements of tests/nbval_sanitize.cfg (commits, addresses, ids), in order."""
    import configparser

    config = configparser.ConfigParser(interpolation=None)
    config.read(Path(__file__).with_name("nbval_sanitize.cfg"))
    return [(re.compile(config[s]["regex"]), config[s]["replace"]) for s in config.sections()]


def _sanitize_like_nbval(text: str) -> str:
    """``text`` with the replacements of tests/nbval_sanitize.cfg applied, as nbval applies them."""
    for pattern, replacement in _sanitize_patterns():
        text = pattern.sub(replacement, text)
    return text


#: the relative tolerance of a learned value, derived from :data:`MEASUREMENT` (see the module)
RELATIVE = derived_relative(measured(), _sanitize_like_nbval)


# --- the comparison nbval makes -------------------------------------------------------------------

def within_tolerance(stored: str, new: str, relative: float | None = None) -> bool:
    """Whether two output texts agree: the same text between their decimal numbers (runs of
    padding, :data:`PADDING`, count as one), and each number of ``new`` within its tolerance
    (:func:`tolerances`) of the stored one."""
    if not same_words(stored, new):
        return False
    return all(math.isclose(_value(a), _value(b), rel_tol=0, abs_tol=t)
               for a, b, t in zip(NUMBER.findall(stored), NUMBER.findall(new), tolerances(stored, relative)))


def snap(stored, new, sanitize=lambda s: s):
    """``new`` with every text that agrees with ``stored`` (:func:`within_tolerance`, after
    ``sanitize``) replaced by the stored text; outputs (lists, dicts) are walked in parallel, and
    anything that does not pair up is left for the exact comparison to report."""
    if isinstance(stored, str) and isinstance(new, str):
        return stored if within_tolerance(sanitize(stored), sanitize(new)) else new
    if isinstance(stored, dict) and isinstance(new, dict):
        return type(new)({k: snap(stored[k], v, sanitize) if k in stored else v for k, v in new.items()})
    if isinstance(stored, list) and isinstance(new, list) and len(stored) == len(new):
        if all(isinstance(s, str) for s in stored + new):  # a text split in lines: compare it whole
            joined = snap("".join(stored), "".join(new), sanitize)
            return list(stored) if joined == "".join(stored) else new
        return [snap(s, n, sanitize) for s, n in zip(stored, new)]
    return new


def install() -> None:
    """Make nbval compare the outputs of cells tagged :data:`TAG` within tolerance."""
    from nbval.plugin import IPyNbCell

    exact = IPyNbCell.compare_outputs
    if getattr(exact, "tolerant", False):
        return

    def compare_outputs(self, test, ref, skip_compare=None):
        if TAG in self.cell.get("metadata", {}).get("tags", []) and len(test) == len(ref):
            test = [snap(r, t, self.sanitize) for r, t in zip(ref, test)]
        return exact(self, test, ref, skip_compare)

    compare_outputs.tolerant = True
    IPyNbCell.compare_outputs = compare_outputs
