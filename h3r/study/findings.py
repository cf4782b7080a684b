"""The findings page: per claim of the paper, the chapter holding the evidence, the key numbers of
the build and a verdict by the rules of :mod:`h3r.stats`, from the other claims' numbers.
"""
from __future__ import annotations

import pandas as pd

from h3r.analysis import CORNER_MEAN
from h3r.stats import (SAID, apart, growth_verdict, interval_text, mechanism_verdict, ratio_text, stride_verdicts,
                       strides_text, theory_verdicts)
from h3r.study.answers import answers_findings
from h3r.study.pose import agreement, pose_differences, pose_findings
from h3r.study.questions import expected_findings
from h3r.study.resolution import (FAMILIES, coarsest_judged, degenerate_reasons, matched_differences,
                                  versus_differences, why_degenerate)

# --- its tables and sentences ------------------------------------------------------------


#: what bounds every learned finding of the default build, for a page to print once above the findings
CAVEATS = ("no GPU run: a small CPU network at 64 px; synthetic faces and figures, not real images; the paper's "
           "own tables could not be read, so no paper number stands beside these")


#: the caveats cell of the findings that :data:`CAVEATS` bound
CAVEATS_TAG = "the build's (above the table)"


def findings(rows: pd.DataFrame, mechanism_rows: pd.DataFrame | None, activation: dict | None,
             theory: dict, official_costs: tuple[int, int] | None = None,
             degenerate: pd.DataFrame | None = None, cost: pd.DataFrame | None = None,
             answers: tuple[pd.DataFrame, pd.DataFrame] | None = None,
             pose: tuple[pd.DataFrame, pd.DataFrame | None] | None = None,
             expected: pd.DataFrame | None = None) -> pd.DataFrame:
    """The findings table: per claim of the paper, the chapter holding the evidence, the key
    numbers of this build, a verdict (by the rules of :mod:`h3r.stats`: supported, partly,
    mostly, not supported, contradicted, within noise, degenerate, or not tested here) and the
    caveats (:data:`CAVEATS_TAG` where they are :data:`CAVEATS`, which a page prints once).
    ``rows``: :func:`resolution_study`; ``mechanism_rows``: :func:`mechanism`; ``activation``: the
    NME of the H3R networks decoded from the top 1 and the top 9 cells; ``degenerate``:
    :func:`degenerate_cells`, whose cells no verdict reads; ``cost``: :func:`cross_resolution`;
    ``answers``: chapter 13's :func:`simcc_rounding_differences` and :func:`versus_nearest_cost`;
    ``pose``: chapter 15's runs with their pose metrics (:func:`h3r.study.pose.with_pose_metrics`)
    and degenerate cells; ``expected``: chapter 14's :func:`h3r.study.questions.expected_differences`."""
    trained = rows[~rows.decoder_only]
    strides = sorted(trained.heatmap_stride.unique())
    diffs = matched_differences(rows, degenerate=degenerate)
    reasons = degenerate_reasons(degenerate)
    round_closed_form = CORNER_MEAN / 2  # vanilla round's mean 2-D error per unit of stride
    out = []

    def add(claim, chapter, numbers, result, caveats=""):
        out.append({"claim": claim, "evidence": chapter, "key numbers": numbers, "verdict": result,
                    "caveats": caveats})

    theory_said = theory_verdicts(theory, round_closed_form)
    add("Vanilla heatmap regression's quantization error grows linearly with the stride (floor: twice "
        "round's)", "[1](01_quantization_error.ipynb)",
        f"mean 2-D error of round / stride {theory['round_per_stride']:.3f} (closed form {round_closed_form:.3f}); "
        f"floor / round {theory['floor_over_round']:.2f} (2)", theory_said["linear"],
        "Monte Carlo with the library's codecs; no network")
    add("Randomized rounding is unbiased", "[2](02_unbiasedness.ipynb)",
        f"RMS error of the mean of {theory['draws']} decodes {theory['mean_error']:.4f} px, sampling noise "
        f"{theory['noise']:.4f} px (stride {theory['stride']})", theory_said["unbiased"], "Monte Carlo; no network")
    add("Decoding the expected target is lossless", "[2](02_unbiasedness.ipynb)",
        f"largest error {theory['lossless']:.1e} px (top-4, normalised weights)", theory_said["lossless"],
        "no network")
    for family, members in FAMILIES.items():
        d = diffs[(diffs.family == family) & (diffs.rounding == "randomized")] if len(diffs) else diffs
        if d.empty:
            continue
        numbers = "; ".join(f"stride {r.heatmap_stride}{' (degenerate)' if r.verdict == 'degenerate' else ''}: "
                            f"{interval_text(r)}" for _, r in d.iterrows())
        result = stride_verdicts(dict(zip(d.heatmap_stride, d.verdict)),
                                 {s: r for s, r in zip(d.heatmap_stride, d.reason) if r})
        add(f"With everything else equal, randomized rounding localises better than deterministic rounding "
            f"({family})", "[5](05_heatmap_resolution.ipynb)",
            f"paired NME difference, randomized minus deterministic, mean [95 % interval] over seeds: {numbers}",
            result, CAVEATS_TAG)

    if pose is not None:
        for claim, chapter, numbers, result in pose_findings(*pose):
            add(claim, chapter, numbers, result, CAVEATS_TAG)
        pose_diffs = pose_differences(*pose)
        faces = diffs[(diffs.treatment == "h3r") & (diffs.control == "onehot-round")] if len(diffs) else diffs
        figures = (pose_diffs[(pose_diffs.treatment == "h3r") & (pose_diffs.control == "onehot-round")
                              & (pose_diffs.metric == "PCKh@0.1")] if len(pose_diffs) else pose_diffs)
        if len(faces) and len(figures):
            numbers, result = agreement(dict(zip(faces.heatmap_stride, faces.verdict)),
                                        dict(zip(figures.heatmap_stride, figures.verdict)))
            add("(beyond the paper) Faces and pose give the same verdict on H3R against its matched control "
                "(NME on faces, PCKh@0.1 on pose)", "[5](05_heatmap_resolution.ipynb), [15](15_human_pose.ipynb)",
                numbers, result, CAVEATS_TAG)

    # growth is read at the coarsest stride where neither codec is degenerate (chapter 5 says so too)
    coarse = coarsest_judged(strides, reasons, ("h3r", "onehot-round")) if strides else None

    def growth(method) -> tuple[float, float, float]:
        """NME at the coarsest judged stride / at the finest, and the two NMEs (means over seeds)."""
        by = trained[trained.method == method].groupby("heatmap_stride")["NME (%)"].mean()
        fine, coarsest = by.get(strides[0], float("nan")), by.get(coarse, float("nan"))
        return coarsest / fine, fine, coarsest

    if {"h3r", "onehot-round"} <= set(trained.method) and len(strides) > 1:
        grown = {m: growth(m) for m in ("h3r", "onehot-round", "argmax-round") if m in set(trained.method)}
        numbers = ", ".join(f"{m} {ratio_text(last, fine)} ({fine:.2f} → {last:.2f} %)"
                            for m, (r, fine, last) in grown.items())
        skipped = [s for s in strides if s > coarse]
        note = f"; {strides_text(skipped)} degenerate, not read" if skipped else ""
        why = why_degenerate(reasons, ("h3r", "onehot-round"), strides) if coarse == strides[0] else ""
        add(f"H3R's error stays nearly flat from fine to coarse heatmaps while vanilla's grows (strides "
            f"{strides[0]} to {coarse})", "[5](05_heatmap_resolution.ipynb)",
            f"growth of the NME, stride {coarse} over stride {strides[0]}{note}: {numbers}",
            f"degenerate ({why})" if why else growth_verdict(grown["h3r"][0], grown["onehot-round"][0]),
            CAVEATS_TAG)
    versus = versus_differences(rows, degenerate=degenerate)
    claims = {"dark": "H3R localises better than DARK (each as published)",
              "udp": "H3R localises better than UDP (each as published)",
              "onehot-round": "(beyond the paper) Part of H3R's gain is its decoder alone: H3R's top-9 decoder on the "
                              "network trained for argmax localises better than argmax"}
    for control, claim in claims.items():
        d = versus[versus.control == control] if len(versus) else versus
        if d.empty:
            continue
        numbers = "; ".join(f"stride {r.heatmap_stride}{' (degenerate)' if r.verdict == 'degenerate' else ''}: "
                            f"{interval_text(r)}" for _, r in d.iterrows())
        add(claim, "[5](05_heatmap_resolution.ipynb)",
            f"paired NME difference, {d.treatment.iloc[0]} minus {control}, mean [95 % interval]: {numbers}",
            stride_verdicts(dict(zip(d.heatmap_stride, d.verdict)),
                            {s: r for s, r in zip(d.heatmap_stride, d.reason) if r}), CAVEATS_TAG)
    below = cost[cost["h3r input"] < cost["argmax-round input"]] if cost is not None and len(cost) else None
    if below is not None and len(below):
        numbers = "; ".join(f"h3r at {r['h3r input']} px minus argmax-round at {r['argmax-round input']} px: "
                            f"{interval_text(r)} ({r['MACs ratio']:.2f} of its MACs), "
                            f"{SAID.get(r['verdict'], r['verdict'])}" for _, r in below.iterrows())
        judged = set(below.verdict)
        result = ("supported at every pair of sizes" if judged == {"supported"} else
                  "contradicted at every pair of sizes" if judged == {"contradicted"} else
                  "mixed: see the key numbers" if len(judged) > 1 else f"{SAID.get(judged.pop(), 'not shown')}")
        add("H3R at a lower input resolution localises better than vanilla heatmap regression at a higher one, "
            "at a fraction of the cost", "[7](07_cost.ipynb)",
            f"paired NME difference over seeds, mean [95 % interval]: {numbers}", result, CAVEATS_TAG)
    if expected is not None and len(expected):
        for row in expected_findings(expected):
            add(*row, CAVEATS_TAG)
    if answers is not None:
        for row in answers_findings(*answers):
            add(*row, CAVEATS_TAG)
    if activation:
        add("The decoder needs several activation points: the argmax alone loses the fraction",
            "[6](06_ablations.ipynb)",
            f"H3R NME at stride 4: top-1 {activation['top-1']:.2f} %, top-9 {activation['top-9']:.2f} %",
            "supported" if activation["top-1"] > activation["top-9"] and apart(activation["top-1"], activation["top-9"])
            else "not supported", CAVEATS_TAG)
    if mechanism_rows is not None and len(mechanism_rows):
        m = mechanism_rows.groupby("heatmap_stride")[["mass", "error", "uniform"]].mean()
        numbers = "; ".join(f"stride {s}: mass {r.mass:.2f}, mean absolute error to bilinear {r.error:.3f} "
                            f"(even split {r.uniform:.3f})" for s, r in m.iterrows())
        verdicts = {s: mechanism_verdict(r.mass, r.error, r.uniform) for s, r in m.iterrows()}
        add("(beyond the paper) The network learns the expected target, the bilinear weights of the 4 neighbours",
            "[6](06_ablations.ipynb)", numbers, stride_verdicts(verdicts), CAVEATS_TAG)
    if official_costs is not None:
        matching, total = official_costs
        add("The official models' parameters and FLOPs (README)", "[9](09_official.ipynb)",
            f"{matching} of {total} README rows reproduced to their two decimals (parameters and thop-style FLOPs)",
            "supported" if matching == total else "not supported",
            "counted on the networks; the official weights were not at hand")
    add("H3R's accuracy on WFLW, 300W, COFW, AFLW, MPII and COCO", "[8](08_benchmarks.ipynb), "
        "[9](09_official.ipynb)", "the datasets and the official weights are not in this build",
        "not tested here", "needs the datasets (and a GPU for the paper's networks)")
    return pd.DataFrame(out)
