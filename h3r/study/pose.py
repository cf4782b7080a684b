"""Chapter 15, human pose: chapter 5's design (:mod:`h3r.study.resolution`: the same matched
families, runs, decoder-only variants, target errors, degenerate cells and paired differences) on
the pose benchmark, read with the metrics a pose reader expects.

* **PCKh@0.5** per MPII joint group and its Mean (:func:`h3r.metrics.mpii_pckh_table`): a joint is
  correct within half the head size, which forgives the sub-pixel errors NME counts;
* **PCKh@0.1**, the strict threshold, where a quantization error of a fraction of a cell shows;
* **AP**, COCO's OKS average precision over thresholds 0.50 to 0.95
  (:func:`h3r.metrics.keypoint_ap`, pycocotools), with COCO's per-joint sigmas for the 12 MPII
  joints COCO defines (:func:`h3r.metrics.oks_sigmas`).

All three are higher-is-better, in %, so a verdict here reads the claim that the treatment's
value is *higher*. The head-normalised NME and the target errors are chapter 5's, in % of the
head size (0.6 x the head box's diagonal, MPII's normaliser).
"""
from __future__ import annotations

import pandas as pd

from h3r.data.layouts import MPII16_NAMES
from h3r.stats import SAID, interval_text, lowest_text, mean_spread, stride_verdicts, strides_text
from h3r.study.resolution import (DECODER_ONLY, FAMILIES, degenerate_reasons, matched_differences, nearest_stride,
                                  resolution_runs, study_codecs, target_errors, versus_differences)

#: a pose run's metrics, in %, each higher-is-better (the module docstring says what each is)
POSE_METRICS = ("PCKh@0.5", "PCKh@0.1", "AP")

#: the MPII table's joint groups (PCKh@0.5 of each), as :func:`h3r.metrics.mpii_pckh_table` names them
GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")

#: MSRA's pose decoder as SimpleBaseline and HRNet publish it: a Gaussian on the rounded cell, read
#: by the argmax moved a quarter cell toward the higher neighbour
MSRA = "argmax-quarter on argmax-round"

#: H3R's network decoded from the 3x3 window around its argmax instead of the top 9 cells of the
#: whole map: where a network puts a peak on a joint and one on its twin (a left and a right wrist),
#: the top 9 may mix the two and land between them, while a window reads one
LOCAL = "h3r-window on h3r"

#: chapter 5's decoder-only variants and :data:`LOCAL`
POSE_DECODER_ONLY = (*DECODER_ONLY, ("h3r-window", "h3r"))

#: (treatment, control) pairs beyond the families: H3R against the pose field's Gaussian decoders,
#: each as published (MSRA's quarter offset, DARK, UDP); H3R's network decoded locally against its
#: matched control and against its own top-9 decoding
VERSUS = (("h3r", MSRA), ("h3r", "dark"), ("h3r", "udp"), (LOCAL, "onehot-round"), (LOCAL, "h3r"))


# --- the numbers ---------------------------------------------------------------------------------


def pose_scores(predictions: dict, names=MPII16_NAMES) -> dict[str, float]:
    """The pose metrics of one evaluation's predictions (:func:`h3r.evaluation.predict`'s dict:
    ``pred``, ``gt``, ``visible``, ``normalizer`` = the head size, ``scores``), in %: the PCKh@0.5
    of each of :data:`GROUPS`, ``PCKh@0.5`` (MPII's Mean: every visible joint but pelvis and
    thorax), ``PCKh@0.1`` (the same at 0.1) and ``AP`` (OKS AP, :func:`h3r.metrics.keypoint_ap`)."""
    from h3r import metrics

    table = metrics.mpii_pckh_table(predictions["pred"], predictions["gt"], predictions["visible"],
                                    predictions["normalizer"], names=names)
    ap = metrics.keypoint_ap(predictions["pred"], predictions["gt"], predictions["visible"], predictions["scores"],
                             metrics.oks_sigmas(names))["AP"]
    return {**{g: table[g] for g in GROUPS}, "PCKh@0.5": table["Mean"], "PCKh@0.1": table["Mean@0.1"],
            "AP": 100 * ap}


def pose_runs(settings, force: bool = False) -> pd.DataFrame:
    """Chapter 15's runs as every chapter reads them: chapter 5's study
    (:func:`~h3r.study.resolution.resolution_runs`) under the resolved settings of chapter
    ``human_pose``, with the decoder-only variants of :data:`POSE_DECODER_ONLY` and the pose
    metrics (:func:`with_pose_metrics`)."""
    return with_pose_metrics(resolution_runs(settings, force=force, decoder_only=POSE_DECODER_ONLY))


def pose_target_errors(settings) -> pd.DataFrame:
    """:func:`~h3r.study.resolution.target_errors` of chapter 15's methods on the test figures."""
    return target_errors(settings.base, settings.strides, study_codecs(settings.as_published), sigma=settings.sigma,
                         decoder_only=POSE_DECODER_ONLY)


def with_pose_metrics(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` of a resolution study (:func:`h3r.study.resolution.resolution_study`) with the
    columns of :func:`pose_scores`, computed from each row's ``predictions`` file."""
    import torch

    scores = [pose_scores(torch.load(path, weights_only=False)) for path in rows.predictions]
    return pd.concat([rows.reset_index(drop=True), pd.DataFrame(scores)], axis=1)


def pose_differences(rows: pd.DataFrame, degenerate: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`~h3r.study.resolution.matched_differences` of every metric of :data:`POSE_METRICS`
    (randomized against deterministic rounding in each family, per stride), on the claim that the
    treatment's value is higher; one ``metric`` column names which."""
    out = [matched_differences(rows, value=m, degenerate=degenerate, claimed="higher").assign(metric=m)
           for m in POSE_METRICS]
    out = [d for d in out if len(d)]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def pose_versus(rows: pd.DataFrame, degenerate: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`~h3r.study.resolution.versus_differences` of :data:`VERSUS` for every metric of
    :data:`POSE_METRICS`, on the claim that H3R's value is higher; a ``metric`` column."""
    out = [versus_differences(rows, VERSUS, degenerate, value=m, claimed="higher").assign(metric=m)
           for m in POSE_METRICS]
    out = [d for d in out if len(d)]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


# --- its tables and sentences ------------------------------------------------------------------


def oks_sigma_text(names=MPII16_NAMES) -> str:
    """The OKS sigma of each joint (:func:`h3r.metrics.oks_sigmas`) in one Markdown line, the
    joints that share a sigma together, and the joints COCO defines none for, which AP leaves out."""
    from h3r.metrics import oks_sigmas

    sigmas = dict(zip(names, oks_sigmas(names)))
    shared: dict[float, list[str]] = {}
    for name, sigma in sigmas.items():
        if sigma == sigma:
            shared.setdefault(round(float(sigma), 3), []).append(name)
    left_out = [name for name, sigma in sigmas.items() if sigma != sigma]
    return ("*OKS sigmas* (COCO's): " + "; ".join(f"{', '.join(joints)} {sigma:.3f}" for sigma, joints in shared.items())
            + (f"; left out (no COCO sigma): {', '.join(left_out)}." if left_out else "."))


def metric_tables(rows: pd.DataFrame, degenerate: pd.DataFrame | None = None,
                  methods=None) -> dict[str, pd.DataFrame]:
    """Per metric of :data:`POSE_METRICS`, the ``method x stride`` table of mean ± s.d. over
    seeds (of ``methods``, in their order; default all), a cell whose decoder is degenerate there
    ending in " †" (:func:`h3r.study.resolution.degenerate_notes` says why)."""
    reasons = degenerate_reasons(degenerate)
    order = list(dict.fromkeys(rows.method if methods is None else [m for m in methods if m in set(rows.method)]))
    tables = {}
    for metric in POSE_METRICS:
        table = mean_spread(rows, "method", "heatmap_stride", value=metric).reindex(order)
        for stride in table.columns:
            table[stride] = [f"{cell} †" if (method, stride) in reasons and isinstance(cell, str) else cell
                             for method, cell in table[stride].items()]
        tables[metric] = table.rename(columns=lambda s: f"stride {s}").rename_axis(None)
    return tables


def group_table(rows: pd.DataFrame, stride: int, methods=None) -> pd.DataFrame:
    """PCKh@0.5 per MPII joint group, its Mean and PCKh@0.1, per method at ``stride`` (mean over
    seeds, %): the MPII results table of each method (of ``methods``, in their order)."""
    at = rows[rows.heatmap_stride == stride]
    table = at.groupby("method", sort=False)[[*GROUPS, "PCKh@0.5", "PCKh@0.1"]].mean()
    table = table.rename(columns={"PCKh@0.5": "Mean", "PCKh@0.1": "Mean@0.1"})
    return table if methods is None else table.reindex(list(dict.fromkeys(m for m in methods if m in table.index)))


def _said(d: pd.DataFrame, reasons: bool = True) -> str:
    """The verdicts of ``d`` by stride, the degenerate ones with their reason (or without)."""
    why = {s: r for s, r in zip(d.heatmap_stride, d.reason) if r} if reasons else None
    return stride_verdicts(dict(zip(d.heatmap_stride, d.verdict)), why)


def pose_answer(rows: pd.DataFrame, degenerate: pd.DataFrame | None = None) -> str:
    """Chapter 15's answer in three Markdown lines, from its runs: per family, whether randomized
    rounding raises each metric (:data:`h3r.stats.VERDICT_RULE`, by stride; a degenerate stride is
    named, and its reason given below the chapter's tables); whether H3R's network decoded
    locally (:data:`LOCAL`) beats the matched control, with the highest PCKh@0.1 and AP at the
    stride nearest 4."""
    diffs = pose_differences(rows, degenerate)
    lines = []
    for family, members in FAMILIES.items():
        d = diffs[(diffs.family == family) & (diffs.treatment == members["randomized"])] if len(diffs) else diffs
        if d.empty:
            continue
        said = "; ".join(f"{m} {_said(d[d.metric == m], reasons=False)}" for m in POSE_METRICS
                         if (d.metric == m).any())
        lines.append(f"* **Does randomized rounding raise the score? {family}** (`{members['randomized']}` against "
                     f"`{members['deterministic']}`): {said}.")
    local = pose_versus(rows, degenerate)
    local = local[(local.treatment == LOCAL) & (local.control == "onehot-round")] if len(local) else local
    if len(local):
        said = "; ".join(f"{m} {_said(local[local.metric == m], reasons=False)}" for m in POSE_METRICS
                         if (local.metric == m).any())
        lines.append(f"* **H3R's network decoded locally** (`{LOCAL}`: the 3×3 window around the argmax, not the top "
                     f"9 of the whole map) against `onehot-round`: {said}.")
    near_4 = nearest_stride(sorted(rows.heatmap_stride.unique()))
    at_4 = rows[rows.heatmap_stride == near_4].groupby("method")[list(POSE_METRICS)].mean()
    highest = (f"*The highest at stride {near_4}*: PCKh@0.1 {lowest_text(at_4['PCKh@0.1'], highest=True)}; "
               f"AP {lowest_text(at_4['AP'], highest=True)}.")
    if lines:  # the third line, without a fourth
        lines[-1] = f"{lines[-1]} {highest}"
    else:
        lines.append(f"* {highest}")
    return "\n".join(lines)


def pose_numbers(diffs: pd.DataFrame) -> str:
    """The paired differences behind :func:`pose_answer` (:func:`pose_differences` or
    :func:`pose_versus`), one Markdown line per comparison and metric: the difference in points
    at each stride with its 95 % interval, and the verdicts."""
    lines = []
    for (treatment, control, metric), d in diffs.groupby(["treatment", "control", "metric"], sort=False):
        numbers = "; ".join(f"stride {r.heatmap_stride}: {interval_text(r)}" for _, r in d.iterrows())
        lines.append(f"* `{treatment}` minus `{control}`, {metric} points: {numbers}: **{_said(d)}**.")
    return "\n".join(lines)


def pose_findings(rows: pd.DataFrame, degenerate: pd.DataFrame | None = None,
                  chapter: str = "[15](15_human_pose.ipynb)") -> list[tuple[str, str, str, str]]:
    """The findings page's pose rows ``(claim, evidence, key numbers, verdict)``: H3R against its
    matched control (``onehot-round``) at each stride, one row per metric of
    :data:`POSE_METRICS`, and H3R's network decoded locally (:data:`LOCAL`) against it on
    PCKh@0.1."""
    diffs = pose_differences(rows, degenerate)
    family = next(f for f, members in FAMILIES.items() if members["randomized"] == "h3r")
    out = []
    for metric in POSE_METRICS:
        d = diffs[(diffs.family == family) & (diffs.treatment == "h3r") & (diffs.metric == metric)] \
            if len(diffs) else diffs
        if d.empty:
            continue
        numbers = "; ".join(f"stride {r.heatmap_stride}{' (degenerate)' if r.verdict == 'degenerate' else ''}: "
                            f"{interval_text(r)}" for _, r in d.iterrows())
        out.append((f"On human pose, H3R scores a higher {metric} than its matched control (one-hot target, "
                    f"spatial-softmax CE; the pose benchmark)", chapter,
                    f"paired {metric} difference, h3r minus onehot-round, points, mean [95 % interval]: {numbers}",
                    _said(d)))
    versus = pose_versus(rows, degenerate)
    local = versus[(versus.treatment == LOCAL) & (versus.control == "onehot-round")
                   & (versus.metric == "PCKh@0.1")] if len(versus) else versus
    if len(local):
        numbers = "; ".join(f"stride {r.heatmap_stride}: {interval_text(r)}" for _, r in local.iterrows())
        out.append(("(beyond the paper) On human pose, H3R's network decoded from the 3×3 window around its argmax "
                    "scores a higher PCKh@0.1 than its matched control", chapter,
                    f"paired PCKh@0.1 difference, {LOCAL} minus onehot-round, points, mean [95 % interval]: {numbers}",
                    _said(local)))
    return out


def agreement(face_verdicts: dict, pose_verdicts: dict) -> tuple[str, str]:
    """Whether faces and pose give the same verdict, stride by stride (stride -> a verdict of
    :mod:`h3r.stats` each, degenerate strides left out), as ``(numbers, verdict)`` for the findings:
    the strides where they agree and those where they do not, and ``"supported"`` where they agree
    at every stride both judge, else ``"not supported"``."""
    shared = sorted(s for s in set(face_verdicts) & set(pose_verdicts)
                    if "degenerate" not in (face_verdicts[s], pose_verdicts[s]))
    if not shared:
        return "no stride judged on both", "not tested here"
    differ = [s for s in shared if face_verdicts[s] != pose_verdicts[s]]
    same = [s for s in shared if s not in differ]
    parts = ([f"the same verdict at {strides_text(same)}"] if same else []) + [
        f"stride {s}: faces {SAID.get(face_verdicts[s], face_verdicts[s])}, pose "
        f"{SAID.get(pose_verdicts[s], pose_verdicts[s])}" for s in differ]
    return "; ".join(parts), "not supported" if differ else "supported"


def mean_head_size(rows: pd.DataFrame) -> float:
    """The mean head size (0.6 x the head box's diagonal, PCKh's unit) of the test figures, in
    pixels, from the first row's predictions."""
    import torch

    return float(torch.load(rows.predictions.iloc[0], weights_only=False)["normalizer"].mean())
