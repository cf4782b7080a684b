"""Statistics of runs: mean and spread over seeds, paired differences, and verdicts by stated rules.

Every verdict of the book comes from a rule stated before its numbers: :data:`VERDICT_RULE` on a
paired difference's 95 % interval, :data:`GROWTH_RULE` on how an error grows with the stride,
:data:`MECHANISM_RULE` on what a network learned, :data:`THEORY_RULE` on the Monte Carlo checks of
the theory; a word that ranks learned numbers needs a margin wider than :data:`MACHINE_SPREAD`.
:func:`stride_verdicts` puts the verdicts of one claim at several strides into one phrase.
"""
from __future__ import annotations

import re

import pandas as pd
from scipy import stats


def mean_spread(rows: pd.DataFrame, index, columns=None, value: str = "NME (%)", digits: int = 2) -> pd.DataFrame:
    """A table of ``mean ± s.d.`` strings over the rows that share ``index`` (and ``columns``);
    a single run shows its value alone."""
    keys = [index] if isinstance(index, str) else list(index)
    if columns is not None:
        keys += [columns] if isinstance(columns, str) else list(columns)
    stats = rows.groupby(keys, sort=False)[value].agg(["mean", "std", "count"])

    def cell(r) -> str:
        return f"{r['mean']:.{digits}f}" if r["count"] < 2 else f"{r['mean']:.{digits}f} ± {r['std']:.{digits}f}"

    text = stats.apply(cell, axis=1)
    return text.unstack(columns) if columns is not None else text.to_frame(value)


def metrics_table(rows: pd.DataFrame, index: str, columns: str,
                  metrics=("NME (%)", "FR@0.1 (%)", "AUC@0.1")) -> pd.DataFrame:
    """:func:`mean_spread` of each of ``metrics`` side by side: ``index`` x (metric, ``columns``),
    e.g. codec x (NME, FR, AUC per test subset), the form a face benchmark reports."""
    return pd.concat({m: mean_spread(rows, index, columns, value=m) for m in metrics}, axis=1)


# --- paired comparisons ----------------------------------------------------------------------------

def paired_differences(rows: pd.DataFrame, treatment: str, control: str, by="heatmap_stride",
                       label: str = "method", value: str = "NME (%)", pair: str = "seed",
                       confidence: float = 0.95) -> pd.DataFrame:
    """``treatment - control`` of ``value``, paired by ``pair`` (the same seed: the same data,
    initialisation and schedule), within each group of ``by``.

    ``rows`` hold one row per run with a ``label`` column naming its method. Returns, per group,
    ``mean`` of the paired differences, the two-sided Student-t ``confidence`` interval
    ``low``/``high`` over pairs (``n - 1`` degrees of freedom; NaN for a single pair), ``n``, the
    per-pair ``differences``, and the difference's terms, ``treatment_mean`` and ``control_mean``
    over the same pairs (:func:`difference_text` shows them). A pair missing one side is left out
    and not counted.
    """
    keys = [by] if isinstance(by, str) else list(by)
    wide = rows[rows[label].isin([treatment, control])].pivot_table(
        index=[*keys, pair], columns=label, values=value, aggfunc="first")
    if treatment not in wide or control not in wide:
        raise ValueError(f"rows hold no {label}={treatment!r} or {control!r}; "
                         f"they have {sorted(rows[label].unique())}")
    diff = (wide[treatment] - wide[control]).dropna()
    out = []
    for group, d in diff.groupby(level=keys, sort=True):
        n, mean = len(d), float(d.mean())
        half = (float(stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / n**0.5) if n > 1
                else float("nan"))
        group = group if isinstance(group, tuple) else (group,)
        out.append({**dict(zip(keys, group)), "treatment": treatment, "control": control, "mean": mean,
                    "low": mean - half, "high": mean + half, "n": n, "differences": d.round(4).tolist(),
                    "treatment_mean": float(wide.loc[d.index, treatment].mean()),
                    "control_mean": float(wide.loc[d.index, control].mean())})
    return pd.DataFrame(out)


#: the rule of :func:`verdict`, for a page to state before the numbers
VERDICT_RULE = ("A paired difference supports the claim where its whole 95 % interval lies on the claimed side of 0, "
                "contradicts it where it lies on the other side, and is within noise where it contains 0.")


def verdict(low: float, high: float, claimed: str = "lower") -> str:
    """The verdict of a paired difference's interval on a claim that the treatment's value is
    ``claimed`` ("lower" or "higher") than the control's: ``supported`` where the whole interval
    lies on the claimed side of 0, ``contradicted`` where it lies on the other, and
    ``not shown`` (within noise) where it contains 0 or is undefined."""
    if claimed not in ("lower", "higher"):
        raise ValueError(f"claimed must be 'lower' or 'higher', got {claimed!r}")
    if not (low == low and high == high):  # NaN: a single pair
        return "not shown"
    sign = -1 if claimed == "lower" else 1
    if sign * low > 0 and sign * high > 0:
        return "supported"
    if sign * low < 0 and sign * high < 0:
        return "contradicted"
    return "not shown"


# --- graded verdicts --------------------------------------------------------------------------------

#: the largest growth (NME at the coarsest stride / NME at the finest) that still reads as flat
FLAT_GROWTH = 1.25
#: the largest share of the deterministic codec's excess growth (growth - 1) that reads as "partly"
PARTLY_GROWTH_SHARE = 0.5
GROWTH_RULE = (f"Growth is the NME at the coarsest stride divided by the NME at the finest. Supported (nearly flat): "
               f"the randomized codec's growth is at most ×{FLAT_GROWTH}; partly: it grows, but its excess growth "
               f"(growth − 1) is at most {PARTLY_GROWTH_SHARE:g} of the deterministic codec's; not supported "
               f"otherwise.")


def growth_verdict(h3r_growth: float, vanilla_growth: float) -> str:
    """:data:`GROWTH_RULE` on the growth ratios (NME at the coarsest stride / at the finest) of the
    randomized codec and of its deterministic control: ``"supported"``, ``"partly"`` or
    ``"not supported"``."""
    if h3r_growth <= FLAT_GROWTH:
        return "supported"
    if h3r_growth - 1 <= PARTLY_GROWTH_SHARE * (vanilla_growth - 1):
        return "partly"
    return "not supported"


#: the least share of the predicted mass on the 4 rounding neighbours that reads as "mostly"
MOSTLY_MASS = 0.9
#: the largest error to the bilinear weights, as a share of an even split's, that reads as "mostly"
MOSTLY_ERROR_SHARE = 0.5
#: the largest such share that reads as "partly": clearly below an even split, since a network that
#: learned nothing sub-cell has the even split's error but for rounding, on either side of it
PARTLY_ERROR_SHARE = 0.8
MECHANISM_RULE = (f"Per stride, from the share of the predicted mass on the 4 rounding neighbours (mass) and the mean "
                  f"absolute difference between the renormalised predicted weights and the bilinear ones (error), "
                  f"against the error of an even split (uniform): mostly if the mass is at least {MOSTLY_MASS:g} and "
                  f"the error at most {MOSTLY_ERROR_SHARE:g} × uniform; partly if the error is at most "
                  f"{PARTLY_ERROR_SHARE:g} × uniform; not supported otherwise.")


def mechanism_verdict(mass: float, error: float, uniform: float) -> str:
    """:data:`MECHANISM_RULE` on the claim that a network trained on randomized one-hot targets
    learns the expected target (:func:`h3r.study.ablations.mechanism`'s ``mass``, ``error`` and ``uniform``):
    ``"mostly"``, ``"partly"`` or ``"not supported"``."""
    if mass >= MOSTLY_MASS and error <= MOSTLY_ERROR_SHARE * uniform:
        return "mostly"
    if error <= PARTLY_ERROR_SHARE * uniform:
        return "partly"
    return "not supported"


# --- theory checks: Monte Carlo with the library's codecs against closed forms ----------------------

#: how far a Monte Carlo estimate may lie from its closed form and still read as supported
THEORY_TOLERANCE = {"round_per_stride": 0.02, "floor_over_round": 0.1}
#: the largest error (px) of decoding the expected target that reads as lossless: float32 round-off
LOSSLESS_PX = 1e-3
THEORY_RULE = (f"Linear growth: rounding's mean 2-D error per unit of stride within "
               f"{THEORY_TOLERANCE['round_per_stride']:g} of its closed form, and flooring's within "
               f"{THEORY_TOLERANCE['floor_over_round']:g} of twice rounding's. Unbiased: the RMS error of the mean "
               f"of the draws under twice its sampling noise. Lossless: the largest error of decoding the expected "
               f"target under {LOSSLESS_PX:g} px.")


def theory_verdicts(checks: dict, round_closed_form: float) -> dict[str, str]:
    """:data:`THEORY_RULE` on :func:`h3r.study.theory.theory_checks`' numbers: ``{"linear", "unbiased",
    "lossless"}`` -> ``"supported"`` or ``"not supported"``; ``round_closed_form`` is rounding's
    mean 2-D error per unit of stride in closed form."""
    def said(holds: bool) -> str:
        return "supported" if holds else "not supported"

    return {"linear": said(abs(checks["round_per_stride"] - round_closed_form) < THEORY_TOLERANCE["round_per_stride"]
                           and abs(checks["floor_over_round"] - 2) < THEORY_TOLERANCE["floor_over_round"]),
            "unbiased": said(checks["mean_error"] < 2 * checks["noise"]),
            "lossless": said(checks["lossless"] < LOSSLESS_PX)}


# --- words that learned numbers decide ------------------------------------------------------------

#: how far, relative to the size of its terms, a learned number may lie from the stored one on
#: another machine: at least the tolerance the stored outputs are checked with, which
#: tests/nbval_tolerance.py derives from book/measurements/kernel_spread.json (a test holds this
#: to it). A word that ranks learned numbers (lowest, on the front) is decided only by a wider margin.
MACHINE_SPREAD = 0.01


def apart(a: float, b: float, spread: float = MACHINE_SPREAD) -> bool:
    """Whether two learned numbers differ by more than their terms can move between machines:
    ``|a − b| > spread × (|a| + |b|)``."""
    return abs(a - b) > spread * (abs(a) + abs(b))


def lowest(values: pd.Series, spread: float = MACHINE_SPREAD, highest: bool = False) -> list:
    """The labels of ``values`` that none is :func:`apart` below: the minimum's, and those of the
    values too close to it to rank on every machine, lowest first (``highest``: the same from the
    top, for a score such as PCKh)."""
    best = values.max() if highest else values.min()
    return list(values[[not apart(v, best, spread) for v in values]].sort_values(ascending=not highest).index)


def lowest_text(values: pd.Series, digits: int = 2, unit: str = " %", name: str = "`{}`",
                highest: bool = False) -> str:
    """:func:`lowest` in words, each label written as ``name`` formats it: ``"`a`, 64.64 %"``, or
    ``"`a` (64.64 %) and `b` (64.90 %), too close to rank"`` where the margin is within
    :data:`MACHINE_SPREAD`."""
    labels = lowest(values, highest=highest)
    if len(labels) == 1:
        return f"{name.format(labels[0])}, {values[labels[0]]:.{digits}f}{unit}"
    listed = [f"{name.format(n)} ({values[n]:.{digits}f}{unit})" for n in labels]
    return f"{', '.join(listed[:-1])} and {listed[-1]}, too close to rank"


# --- derived numbers as text -------------------------------------------------------------------------
# A difference or a ratio of two learned numbers moves with its terms, however small it is itself:
# -0.41 NME points between two networks of 64 % moves as 64 % does. So the book prints it with its
# terms on hover, and the check of the stored outputs (tests/nbval_tolerance.py) reads them there.

def terms_text(shown: str, first: float, second: float, operator: str) -> str:
    """``shown`` (a number as text) as HTML naming the terms it was computed from, which a reader
    sees on hover: ``<span title="64.22 − 64.63">-0.41</span>`` (``operator`` "−" or "/")."""
    if operator not in ("−", "/"):
        raise ValueError(f"operator must be '−' (a difference) or '/' (a ratio), got {operator!r}")
    return f'<span title="{first:.2f} {operator} {second:.2f}">{shown}</span>'


TERMS = re.compile(r'<span title="[^"]*">([^<]*)</span>')


def without_terms(text: str) -> str:
    """``text`` with the terms of its derived numbers dropped (:func:`terms_text`): plain text, as
    a log line or a terminal shows it."""
    return TERMS.sub(r"\1", text)


def difference_text(mean: float, treatment: float, control: float) -> str:
    """A paired difference ``"+1.23"`` (2 decimals, signed) with its terms, the treatment's and the
    control's means (:func:`terms_text`)."""
    return terms_text(f"{mean:+.2f}", treatment, control, "−")


def ratio_text(numerator: float, denominator: float) -> str:
    """``"×1.23"``, the ratio of two learned numbers, with its terms (:func:`terms_text`)."""
    return terms_text(f"×{numerator / denominator:.2f}", numerator, denominator, "/")


def interval_text(row) -> str:
    """A row of :func:`paired_differences` as ``"+1.23 [+0.50, +1.96]"``, or ``"+1.23 (one seed)"``
    where there is no interval (one pair); the mean with its terms (:func:`difference_text`)."""
    mean = difference_text(row["mean"], row["treatment_mean"], row["control_mean"])
    return f"{mean} {bounds_text(row['low'], row['high'])}" if row["low"] == row["low"] else f"{mean} (one seed)"


def bounds_text(low: float, high: float) -> str:
    """``"[+0.50, +1.96]"``, or ``"none (one seed)"`` where there is no interval (one pair)."""
    return f"[{low:+.2f}, {high:+.2f}]" if low == low else "none (one seed)"


#: how a verdict reads in :func:`stride_verdicts`' phrase, where it reads otherwise than itself
SAID = {"not shown": "within noise"}
#: the verdicts that read "at every stride" when every stride gives them
EVERY_STRIDE = ("supported", "mostly", "partly")


def strides_text(strides, unit: str = "stride") -> str:
    """``"stride 4"`` or ``"strides 8, 16"`` (``unit`` names what the numbers are: ``"bin width"``)."""
    return f"{unit}{'s' if len(strides) > 1 else ''} {', '.join(f'{s:g}' for s in strides)}"


def stride_verdicts(verdicts: dict, reasons: dict | None = None, unit: str = "stride") -> str:
    """One phrase for the verdicts of a claim at each stride (stride -> a verdict of
    :mod:`h3r.stats`, or ``"degenerate"``): ``"supported at every stride"`` (likewise
    mostly, partly), or in the order of the strides which strides give which verdict
    (``"not shown"`` reads "within noise"), e.g. ``"partly at strides 2, 4; mostly at stride 8"``.
    Degenerate strides are judged by none and named last with their reason (``reasons``: stride
    -> why): ``"stride 16 degenerate (<reason>)"``. ``unit`` names the keys (default "stride")."""
    judged = {s: v for s, v in sorted(verdicts.items()) if v != "degenerate"}
    words = list(dict.fromkeys(judged.values()))
    if len(judged) == len(verdicts) and len(words) == 1 and words[0] in EVERY_STRIDE:
        return f"{words[0]} at every {unit}"
    parts = [f"{SAID.get(w, w)} at {strides_text([s for s, v in judged.items() if v == w], unit)}" for w in words]
    degenerate = sorted(set(verdicts) - set(judged))
    reasons = reasons or {}
    for why in dict.fromkeys(reasons.get(s, "") for s in degenerate):
        strides = [s for s in degenerate if reasons.get(s, "") == why]
        parts.append(f"{strides_text(strides, unit)} degenerate" + (f" ({why})" if why else ""))
    return "; ".join(parts)


# --- accuracy against cost ----------------------------------------------------------------------------

def pareto_front(cost, value, spread: float = 0.0) -> list[bool]:
    """Whether each point ``(cost[i], value[i])`` lies on the Pareto front, lower being better in
    both: no other point is at least as good in both and better in one. Values that are not
    :func:`apart` by ``spread`` count as equal (the front of learned values is then the same on
    every machine). NaN points are never on it."""
    points = list(zip(cost, value))

    def dominated(c, v) -> bool:
        return any(c2 <= c and (v2 < v and apart(v2, v, spread) or not apart(v2, v, spread) and c2 < c)
                   for c2, v2 in points)

    return [c == c and v == v and not dominated(c, v) for c, v in points]
