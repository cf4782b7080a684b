"""Learned numbers in the stored notebook outputs, compared within a stated tolerance.

The last digits of a training run depend on the machine that trains it: the instruction set
(AVX-512, AVX2, ARM), the thread count, and the kernels the math library picks on that CPU. A
notebook cell whose outputs show such numbers (trained, or reduced in an order the machine
chooses) carries the tag :data:`TAG`. For those cells nbval still compares every output, but
each decimal number of the new output that lies within :func:`tolerance` of the stored one is
taken as the stored one first; every other character must match as before (words, verdicts,
counts, integers, the shape of every table). Cells without the tag are compared exactly: codec
round trips, closed forms, parameter and MAC counts.

A material change still fails: a number outside the tolerance, a verdict that flips, a row that
appears. ``tests/test_nbval_tolerance.py`` shows both sides on the stored outputs.
"""
from __future__ import annotations

import math
import re

#: the tag of a cell whose outputs show learned numbers
TAG = "learned-numbers"
#: relative tolerance of a learned number (2 % of the stored value) ...
RELATIVE = 0.02
#: ... plus this many units in the last place the stored value prints (0.05 for "4.99")
ULPS = 5

# a decimal number (with a point), its sign and exponent, not inside a word (a commit, "x0.5");
# integers are compared as text
NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?\d+\.\d+(?:[eE][-+]?\d+)?(?!\w|\.\d)")


def _value(text: str) -> float:
    return float(text.replace("\u2212", "-"))


def unit_in_last_place(text: str) -> float:
    """The step of the last digit ``text`` prints: 0.01 for "4.99", 1e-5 for "1.2e-04"."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def tolerance(stored: str) -> float:
    """How far a recomputed number may lie from the ``stored`` one (its text)."""
    return RELATIVE * abs(_value(stored)) + ULPS * unit_in_last_place(stored)


# a Markdown table pads its columns to the widest cell, with spaces and with the dashes of the
# rule under its header, so a number one character shorter moves the layout of a whole column
PADDING = re.compile(r"[ \t]+|-{3,}")


def _layout_free(text: str) -> str:
    return PADDING.sub(lambda m: "-" * 3 if m.group().startswith("-") else " ", text)


def within_tolerance(stored: str, new: str) -> bool:
    """Whether two output texts agree: the same text between their decimal numbers (runs of
    padding, :data:`PADDING`, count as one), and each number of ``new`` within :func:`tolerance`
    of the stored one."""
    texts = NUMBER.split(stored)
    if [_layout_free(t) for t in texts] != [_layout_free(t) for t in NUMBER.split(new)]:
        return False
    numbers = NUMBER.findall(stored)
    tolerances = [tolerance(a) for a in numbers]
    for k in interval_means(texts):
        # a bound is mean ± half-width, each with its own last digits: a bound near 0 moves with
        # both, however small it is itself
        mean, low, high = (_value(a) for a in numbers[k:k + 3])
        for bound in (k + 1, k + 2):
            tolerances[bound] = RELATIVE * (abs(mean) + abs(high - low) / 2) + ULPS * unit_in_last_place(numbers[bound])
    return all(math.isclose(_value(a), _value(b), rel_tol=0, abs_tol=t)
               for a, b, t in zip(numbers, NUMBER.findall(new), tolerances))


def interval_means(texts: list[str]) -> list[int]:
    """The indices of the numbers that open an interval ``mean [low, high]``, given the texts
    around the numbers (``NUMBER.split``: ``texts[k]`` precedes number ``k``)."""
    return [k for k in range(len(texts) - 3)
            if texts[k + 1].strip() == "[" and texts[k + 2].strip() == "," and texts[k + 3].lstrip().startswith("]")]


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
