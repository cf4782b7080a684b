"""The questions people ask about H3R (chapter 14), each answered by runs of this code.

The official repository (baoshengyu/H3R) releases inference code only, and its issue tracker asks
how H3R is trained. Every answer here is a paired comparison at the ablation stride over the
chapter's seeds, against the paper's choice (its *control*): chapter 6's runs read back,
and four designs of this page's own (every row of a table is paired with runs of its own data
regime: fresh faces every epoch, or the same faces):

- **when to draw** (:func:`draw_variants`): on a finite training set (``fresh_samples=False``, the
  same faces every epoch, as a real dataset), a fresh draw every time a sample is seen (the
  paper), one draw fixed per sample (``draw="fixed"``), and the expected target with no draw, at
  the ablation stride and at chapter 5's strides (:func:`expected_differences`: is the draw
  needed at all?);
- **binary or Gaussian** (:func:`shape_variants`): on the same finite set, a Gaussian on the same
  draw under the same loss (the shape alone), and the Gaussian draw with MSE (shape and loss);
- **a one-channel sigmoid head** (:func:`sigmoid_variants`): binary cross-entropy plain, with
  ``pos_weight = H·W - 1``, and focal, against the paper's spatial softmax;
- **the train/test softmax** (:func:`decoding_variants`): the paper's networks decoded with their
  top-9 softmax, a softmax over the whole map, and sigmoid weights over the top 9 (no retraining).

    cfg = open_chapter("questions", profile)
    rows = questions_runs(cfg)            # question -> the rows that answer it (runs, decodings)
    table = questions_table(rows)         # one row per comparison: difference, interval, verdict
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from h3r.config import Config, preset_args
from h3r.stats import difference_text, interval_text, paired_differences, stride_verdicts, verdict

#: how a comparison reads: the claim tested is that the alternative's error is lower than the
#: paper's choice's (its NME minus the control's, paired by seed)
READS = {"supported": "lower error than the paper's choice", "contradicted": "higher error than the paper's choice",
         "not shown": "within noise"}
READING_RULE = ("Each row is an alternative's NME minus the paper's choice's, paired by seed (the same data, "
                "initialisation and schedule), with its 95 % Student-t interval over seeds. It reads *lower "
                "error* where the whole interval lies below 0, *higher error* where it lies above, and *within "
                "noise* where it contains 0; a single seed gives no interval and reads within noise.")

PAPER_DRAW = "a fresh draw each time (the paper)"
PAPER_LOSS = "spatial softmax CE (the paper)"
PAPER_DECODER = "top-9 softmax (the paper)"
PAPER_TARGET = "one-hot draw, spatial CE (the paper)"


def draw_variants() -> dict[str, dict]:
    """When to draw, on a finite training set (label -> the config fields each changes): a fresh
    draw every time a sample is seen, one draw fixed per sample, the expected target."""
    finite = dict(preset="h3r", fresh_samples=False)
    return {PAPER_DRAW: finite,
            "one draw, fixed per sample": {**finite, "draw": "fixed"},
            "expected target, no draw": {**finite, "codec_args": {"target": "bilinear"}}}


#: the alternative whose answer across strides the page and the findings state
EXPECTED = "expected target, no draw"
#: the two ways of drawing it is compared with, at every stride
DRAWS = (PAPER_DRAW, "one draw, fixed per sample")


def shape_variants(sigma: float) -> dict[str, dict]:
    """Binary or Gaussian, on the finite training set of :func:`draw_variants` (label -> config
    fields): the paper's one-hot draw under its spatial softmax; a Gaussian of ``sigma`` cells on
    the same draw under the same loss (only the target's shape changes); chapter 5's Gaussian draw
    under MSE (the shape and the loss change)."""
    finite = dict(preset="h3r", fresh_samples=False)
    return {PAPER_TARGET: finite,
            "Gaussian on the draw, spatial CE (the shape alone)": {**finite,
                                                                    "codec_args": {"target": "gaussian", "sigma": sigma}},
            "Gaussian draw, MSE (shape and loss)": dict(preset="gauss-random", fresh_samples=False,
                                                        codec_args=preset_args("gauss-random", sigma))}


def sigmoid_variants(cells: int) -> dict[str, dict]:
    """The one-channel sigmoid head on a ``cells``-cell heatmap (label -> config fields), beside the
    paper's spatial softmax: binary CE plain, with ``pos_weight = H·W - 1`` (the background cells
    per foreground cell), and focal (gamma 2). Each decodes with sigmoid weights over its top 9."""
    sigmoid = dict(preset="h3r", codec_args={"weighting": "sigmoid"}, loss="sigmoid_ce")
    return {PAPER_LOSS: dict(preset="h3r"),
            "sigmoid BCE": sigmoid,
            f"sigmoid BCE, pos_weight {cells - 1} (H·W − 1)": {**sigmoid, "loss_args": {"pos_weight": "balanced"}},
            "sigmoid focal (gamma 2)": {**sigmoid, "loss_args": {"gamma": 2.0}}}


def decoding_variants(cells: int) -> dict[str, dict]:
    """The paper's networks decoded otherwise (label -> the H3R decoder's arguments): the top-9
    softmax it is published with, a softmax over all ``cells`` cells, sigmoid weights on the top 9."""
    return {PAPER_DECODER: {}, "softmax over the whole map": {"k": cells},
            "top-9 sigmoid weights": {"weighting": "sigmoid"}}


def decodings(runs: pd.DataFrame, variants: dict[str, dict]) -> pd.DataFrame:
    """Every run of ``runs`` decoded with each of ``variants`` (label -> H3R decoder arguments; one
    network pass per run, :func:`h3r.runs.reevaluate_decoders`). Columns ``variant``, ``seed``,
    ``heatmap_stride``, ``NME (%)``, ``commit``."""
    from h3r.runs import reevaluate_decoders

    rows = []
    for run in runs.itertuples():
        evaluations = reevaluate_decoders(run.config, [("h3r", args) for args in variants.values()])
        rows += [dict(variant=label, seed=run.seed, heatmap_stride=run.heatmap_stride, commit=run.commit,
                      **{"NME (%)": e["summary"]["all"]["NME (%)"]}) for label, e in zip(variants, evaluations)]
    return pd.DataFrame(rows)


def draw_study(base: Config, strides, seeds, force: bool = False) -> pd.DataFrame:
    """:func:`draw_variants` at every stride of ``strides`` over ``seeds``: one row per run, with a
    ``variant`` column."""
    from h3r.runs import run_variants

    return pd.concat([run_variants(dataclasses.replace(base, heatmap_stride=s), draw_variants(), seeds, force=force)
                      for s in strides], ignore_index=True)


def questions_study(base: Config, stride: int, seeds, sigma: float, two_channel_seeds, strides=(),
                    force: bool = False) -> dict[str, pd.DataFrame]:
    """Every row the page reads, by question, at heatmap stride ``stride`` over ``seeds``:
    ``draw``, ``shape``, ``imbalance`` and ``decoding`` (this page's designs, one row per run or
    decoding with a ``variant`` column; ``shape``'s Gaussians with ``sigma``); ``two_channel``
    (chapter 6's two-channel head over ``two_channel_seeds``, read back); and ``expected``, the
    draw question at ``stride`` and every stride of ``strides``."""
    from h3r.runs import run_variants
    from h3r.study.ablations import head_variants

    at_stride = dataclasses.replace(base, heatmap_stride=stride)
    cells = (base.input_size // stride) ** 2
    imbalance = run_variants(at_stride, sigmoid_variants(cells), seeds, force=force)
    paper = imbalance[imbalance.variant == PAPER_LOSS]
    two_channel = run_variants(dataclasses.replace(at_stride, preset="h3r"), head_variants(cells, base.lr),
                               two_channel_seeds, force=force)
    expected = draw_study(base, sorted({stride, *strides}), seeds, force=force)
    return {"draw": expected[expected.heatmap_stride == stride].reset_index(drop=True),
            "shape": run_variants(at_stride, shape_variants(sigma), seeds, force=force),
            "imbalance": imbalance, "decoding": decodings(paper, decoding_variants(cells)),
            "two_channel": two_channel, "expected": expected}


def questions_runs(settings, force: bool = False) -> dict[str, pd.DataFrame]:
    """The page's rows as every chapter reads them: :func:`questions_study` with the resolved
    settings of chapter ``questions``."""
    return questions_study(settings.base, settings.stride, settings.seeds, settings.sigma, settings.two_channel_seeds,
                           settings.strides, force=force)


def expected_runs(settings, force: bool = False) -> pd.DataFrame:
    """The draw question at every stride (:func:`draw_study`) under the resolved settings of chapter
    ``questions``: what the findings read back."""
    return draw_study(settings.base, sorted({settings.stride, *settings.strides}), settings.seeds, force=force)


def runs_line(rows: dict[str, pd.DataFrame]) -> str:
    """What the page's rows hold, in one sentence: its runs (each counted once, trained now and
    read back) and its decodings of the paper's networks."""
    runs = pd.concat([r for name, r in rows.items() if name != "decoding"]).drop_duplicates("run")
    return (f"{len(runs)} runs ({int((~runs.cached).sum())} trained now, {int(runs.cached.sum())} read back), "
            f"{len(rows['decoding'])} decodings of the paper's networks")


def expected_differences(expected: pd.DataFrame, degenerate: pd.DataFrame | None = None) -> pd.DataFrame:
    """The expected target (:data:`EXPECTED`) minus each way of drawing (:data:`DRAWS`), paired by
    seed at every stride of ``expected`` (:func:`draw_study`'s rows), with its 95 % interval and
    the verdict on the claim that the expected target's error is lower (:func:`h3r.stats.verdict`;
    ``"degenerate"`` where ``degenerate``, :func:`h3r.study.resolution.degenerate_cells`, flags
    H3R's decoder at that stride). Columns as :func:`h3r.stats.paired_differences`' and
    ``control``, ``verdict``, ``reason``."""
    from h3r.study.resolution import degenerate_reasons

    reasons = degenerate_reasons(degenerate)
    out = []
    for control in DRAWS:
        diff = paired_differences(expected, EXPECTED, control, label="variant")
        why = [reasons.get(("h3r", s), "") for s in diff.heatmap_stride]
        out.append(diff.assign(control=control, reason=why,
                               verdict=["degenerate" if w else verdict(lo, hi)
                                        for w, lo, hi in zip(why, diff.low, diff.high)]))
    return pd.concat(out, ignore_index=True)


def expected_text(diffs: pd.DataFrame) -> str:
    """:func:`expected_differences` in Markdown, one line per way of drawing: the difference in
    NME points at each stride with its interval, and the verdicts by stride."""
    lines = []
    for control, d in diffs.groupby("control", sort=False):
        numbers = "; ".join(f"stride {r.heatmap_stride}: {interval_text(r)}" for _, r in d.iterrows())
        said = stride_verdicts(dict(zip(d.heatmap_stride, d.verdict)), {s: r for s, r in zip(d.heatmap_stride, d.reason)
                                                                         if r})
        lines.append(f"* *{EXPECTED}* minus *{control}*, NME points: {numbers}: **{said}** (the claim: the "
                     f"expected target's error is lower).")
    return "\n".join(lines)


def expected_findings(diffs: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """The findings' rows ``(claim, evidence, key numbers, verdict)`` on the expected target: one
    per way of drawing it is compared with, by stride."""
    out = []
    for control, d in diffs.groupby("control", sort=False):
        numbers = "; ".join(f"stride {r.heatmap_stride}: {interval_text(r)}" for _, r in d.iterrows())
        out.append((f"(beyond the paper) Training on the expected target (the four neighbours' bilinear weights, no "
                    f"draw) localises better than {control} (the same faces every epoch)", "[14](14_questions.ipynb)",
                    f"paired NME difference, expected target minus {control}, mean [95 % interval]: {numbers}",
                    stride_verdicts(dict(zip(d.heatmap_stride, d.verdict)),
                                    {s: r for s, r in zip(d.heatmap_stride, d.reason) if r})))
    return out


def caveats(base: Config) -> str:
    """What bounds this page's conclusions, from the settings it ran with: its network, data and
    training budget."""
    return (f"*Caveats.* One network ({base.backbone} x{base.width_mult} at {base.input_size} px), trained from "
            f"scratch for {base.epochs} epoch{'s' if base.epochs != 1 else ''} of {base.train_samples} synthetic faces "
            f"({base.dataset}), with the "
            f"schedule chapter 4 chose for H3R; a row's verdict says what the alternative does at this scale, not on "
            f"real faces, a larger network or a longer schedule.")


#: the questions the runs answer (the keys of :func:`questions_study`'s rows)
QUESTIONS = {
    "draw": "Four neighbours' probabilities or one random neighbour, and when to draw it?",
    "shape": "Binary (one-hot) or Gaussian heatmap?",
    "imbalance": "One foreground cell against H·W − 1 background cells: how is the imbalance handled?",
    "decoding": "Training takes a softmax over the whole map, decoding one over the top 9: does that matter?",
}
#: the questions' short titles, for tables
TITLES = {"draw": "when to draw", "shape": "binary or Gaussian", "imbalance": "imbalance",
          "decoding": "train/test softmax"}
#: question -> the paper's choice, every alternative's control
CONTROLS = {"draw": PAPER_DRAW, "shape": PAPER_TARGET, "imbalance": PAPER_LOSS, "decoding": PAPER_DECODER}


def differences(rows: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every alternative minus its question's control (:data:`CONTROLS`), paired by seed, with its
    95 % interval and how it reads (:data:`READS`). Columns ``question``, ``alternative``,
    ``mean``, ``low``, ``high``, ``n``, ``differences``, ``treatment_mean``, ``control_mean``, ``reads``."""
    out = []
    for question, control in CONTROLS.items():
        frame = rows[question]
        for alternative in dict.fromkeys(frame.variant):
            if alternative == control:
                continue
            diff = paired_differences(frame, alternative, control, label="variant")
            out.append(diff.assign(question=question, alternative=alternative,
                                   reads=[READS[verdict(lo, hi)] for lo, hi in zip(diff.low, diff.high)]))
    return pd.concat(out, ignore_index=True)[["question", "alternative", "mean", "low", "high", "n", "differences",
                                               "treatment_mean", "control_mean", "reads"]]


def numbers(diffs: pd.DataFrame, question: str, alternatives=None) -> str:
    """The numbers that settle ``question`` (or only its ``alternatives``), in one Markdown
    sentence: each alternative's NME minus the paper's choice's (95 % interval) and how it reads."""
    rows = diffs[(diffs.question == question) & (diffs.alternative.isin(alternatives) if alternatives else True)]
    return "; ".join(f"*{r.alternative}*: {interval_text(r)} NME points ({r.reads})" if r.n > 1 else
                     f"*{r.alternative}*: {difference_text(r['mean'], r.treatment_mean, r.control_mean)} NME points "
                     f"(one seed: {r.reads})" for _, r in rows.iterrows())


def conclusion(diffs: pd.DataFrame, question: str) -> str:
    """How ``question``'s alternatives read against the paper's choice, grouped: ``"within noise:
    A, B; higher error than the paper's choice: C"``."""
    rows = diffs[diffs.question == question]
    groups = {reads: [a for a, r in zip(rows.alternative, rows.reads) if r == reads] for reads in READS.values()}
    return "; ".join(f"{reads}: {', '.join(f'*{a}*' for a in names)}" for reads, names in groups.items() if names)


def summary(diffs: pd.DataFrame) -> str:
    """The page's answer in at most three Markdown lines, one per reading (:data:`READS`), each
    naming the alternatives that read so and their question (:data:`TITLES`); each question's
    answer against its control (:func:`conclusion`) follows on the page."""
    lines = []
    for reads in READS.values():
        rows = diffs[diffs.reads == reads]
        if len(rows):
            lines.append(f"* **{reads[:1].upper() + reads[1:]}**: "
                         + "; ".join(f"*{a}* ({TITLES[q]})" for q, a in zip(rows.question, rows.alternative)) + ".")
    return "\n".join(lines)


def questions_table(diffs: pd.DataFrame) -> pd.DataFrame:
    """:func:`differences` for display: one row per alternative, indexed by the question's short
    title (:data:`TITLES`) and the alternative; its difference from the paper's choice, seeds and
    how it reads (the controls and the chapters of the full evidence are the page's text)."""
    table = diffs.assign(**{"question": [TITLES[q] for q in diffs.question],
                            "difference [95 % interval]": [interval_text(r) for _, r in diffs.iterrows()],
                            "seeds": diffs.n})
    return table.set_index(["question", "alternative"])[["difference [95 % interval]", "seeds", "reads"]]
