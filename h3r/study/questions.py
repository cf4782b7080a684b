"""The questions people ask about H3R (chapter 14), each answered by runs of this code.

The official repository (baoshengyu/H3R) releases inference code only, and its issue tracker asks
how H3R is trained. Every answer here is a paired comparison at the ablation stride over the
chapter's seeds, against the paper's choice (its *control*): chapter 5's and 6's runs read back,
and three designs of this page's own:

- **when to draw** (:func:`draw_variants`): on a finite training set (``fresh_samples=False``, the
  same faces every epoch, as a real dataset), a fresh draw every time a sample is seen (the
  paper), one draw fixed per sample (``draw="fixed"``), and the expected target with no draw;
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

from h3r.config import Config
from h3r.stats import difference_text, interval_text, paired_differences, verdict

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
    finite = dict(codec="h3r", fresh_samples=False)
    return {PAPER_DRAW: finite,
            "one draw, fixed per sample": {**finite, "draw": "fixed"},
            "expected target, no draw": {**finite, "codec_args": {"target": "bilinear"}}}


def sigmoid_variants(cells: int) -> dict[str, dict]:
    """The one-channel sigmoid head on a ``cells``-cell heatmap (label -> config fields), beside the
    paper's spatial softmax: binary CE plain, with ``pos_weight = H·W - 1`` (the background cells
    per foreground cell), and focal (gamma 2). Each decodes with sigmoid weights over its top 9."""
    sigmoid = dict(codec="h3r", codec_args={"weighting": "sigmoid"}, loss="sigmoid_ce")
    return {PAPER_LOSS: dict(codec="h3r"),
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


def questions_study(base: Config, stride: int, seeds, resolution, two_channel_seeds,
                    force: bool = False) -> dict[str, pd.DataFrame]:
    """Every row the page reads, by question, at heatmap stride ``stride`` over ``seeds``:
    ``draw``, ``imbalance`` and ``decoding`` (this page's designs, one row per run or decoding with
    a ``variant`` column); ``shape`` (chapter 5's one-hot and Gaussian draws, read back); and
    ``two_channel`` (chapter 6's two-channel head over ``two_channel_seeds``, read back).
    ``resolution``: chapter 5's settings at this stride and these seeds (:func:`h3r.profiles.reading`)."""
    from h3r.runs import run_variants
    from h3r.study.ablations import head_variants
    from h3r.study.resolution import resolution_runs

    at_stride = dataclasses.replace(base, heatmap_stride=stride)
    cells = (base.input_size // stride) ** 2
    imbalance = run_variants(at_stride, sigmoid_variants(cells), seeds, force=force)
    paper = imbalance[imbalance.variant == PAPER_LOSS]
    target = resolution_runs(resolution, codecs=["h3r", "gauss-random"], force=force)
    shape = target[~target.decoder_only].assign(
        variant=lambda r: r.codec.map({"h3r": PAPER_TARGET, "gauss-random": "Gaussian draw, MSE (chapter 5)"}))
    two_channel = run_variants(dataclasses.replace(at_stride, codec="h3r"), head_variants(cells, base.lr),
                               two_channel_seeds, force=force)
    return {"draw": run_variants(at_stride, draw_variants(), seeds, force=force), "shape": shape,
            "imbalance": imbalance, "decoding": decodings(paper, decoding_variants(cells)),
            "two_channel": two_channel}


def questions_runs(settings, force: bool = False) -> dict[str, pd.DataFrame]:
    """The page's rows as every chapter reads them: :func:`questions_study` with the resolved
    settings of chapter ``questions``, and chapter 5's runs at its stride and seeds."""
    from h3r.profiles import reading

    resolution = reading("heatmap_resolution", settings, strides=[settings.stride], seeds=list(settings.seeds),
                         sigma=settings.sigma)
    return questions_study(settings.base, settings.stride, settings.seeds, resolution, settings.two_channel_seeds,
                           force=force)


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
