"""The tables and sentences the book shows from the study's numbers (:mod:`h3r.study`).

Formatting only: nothing here trains, reads or schedules a run. Every verdict comes from a rule of
:mod:`h3r.stats`, which a page states before the numbers.
"""
from __future__ import annotations

import pandas as pd

from h3r.analysis import CORNER_MEAN
from h3r.stats import (MECHANISM_RULE, SAID, apart, bounds_text, difference_text, growth_verdict, interval_text,
                       lowest_text, mean_spread, mechanism_verdict, ratio_text, stride_verdicts, strides_text,
                       theory_verdicts)
from h3r.study import FAMILIES, degenerate_reasons, matched_differences, versus_differences, why_degenerate


def with_target_errors(rows: pd.DataFrame, target_error: pd.DataFrame, value: str = "NME (%)",
                       degenerate: pd.DataFrame | None = None) -> pd.DataFrame:
    """``method x stride`` table of the learned ``value`` (mean ± s.d. over seeds) beside each
    method's target error (:func:`target_errors`), sub-columns ``"learned"`` and
    ``"target error"``. A learned cell whose decoder is degenerate there (``degenerate``:
    :func:`degenerate_cells`) ends in " †"; :func:`degenerate_notes` says why, below the table."""
    learned = mean_spread(rows, "method", "heatmap_stride", value=value)
    errors = target_error.pivot(index="method", columns="heatmap_stride", values="target_error")
    errors = errors.reindex(learned.index)
    reasons = degenerate_reasons(degenerate)
    table = {}
    for stride in learned.columns:
        table[(f"stride {stride}", "learned")] = [f"{cell} †" if (method, stride) in reasons and isinstance(cell, str)
                                                  else cell for method, cell in learned[stride].items()]
        table[(f"stride {stride}", "target error")] = errors[stride].round(2)
    return pd.DataFrame(table, index=learned.index)


def degenerate_notes(degenerate: pd.DataFrame | None, methods=None) -> list[str]:
    """One line per reason among the degenerate cells (of ``methods``; default all), to print
    below a :func:`with_target_errors` table: ``"† dark, gauss-random at stride 16: <reason>"``."""
    if degenerate is None:
        return []
    shown = degenerate if methods is None else degenerate[degenerate.method.isin(list(methods))]
    return [f"† {', '.join(dict.fromkeys(cells.method))} at {strides_text(sorted(set(cells.heatmap_stride)))}: {reason}"
            for reason, cells in shown.groupby("reason", sort=False)]




def resolution_answer(rows: pd.DataFrame, degenerate: pd.DataFrame | None = None) -> str:
    """Chapter 5's answer in a few Markdown lines, from its runs: per family, the paired
    difference of the randomized rounding against the deterministic one at each stride with its
    verdict (:data:`h3r.stats.VERDICT_RULE`), and the growth of both from the finest to the
    coarsest stride with :func:`h3r.stats.growth_verdict`."""
    trained = rows[~rows.decoder_only]
    strides = sorted(trained.heatmap_stride.unique())
    diffs = matched_differences(rows, degenerate=degenerate)
    mean = trained.groupby(["method", "heatmap_stride"])["NME (%)"].mean()
    lines = []
    for family, members in FAMILIES.items():
        control, codec = members["deterministic"], members["randomized"]
        d = diffs[(diffs.family == family) & (diffs.treatment == codec)] if len(diffs) else diffs
        if d.empty:
            continue
        verdicts = stride_verdicts(dict(zip(d.heatmap_stride, d.verdict)),
                                   {s: r for s, r in zip(d.heatmap_stride, d.reason) if r})
        numbers = "; ".join(f"stride {r.heatmap_stride}: {interval_text(r)}" for _, r in d.iterrows())
        line = (f"* **{family}**: `{codec}` minus `{control}`, NME points (95 % interval over seeds): {numbers}. "
                f"Randomized rounding lowers the error: **{verdicts}**.")
        if len(strides) > 1:
            growth = {m: mean[m, strides[-1]] / mean[m, strides[0]] for m in (codec, control)}
            grows = {m: ratio_text(mean[m, strides[-1]], mean[m, strides[0]]) for m in (codec, control)}
            line += (f" From stride {strides[0]} to {strides[-1]} the error of `{codec}` grows {grows[codec]}, "
                     f"that of `{control}` {grows[control]}: nearly flat? "
                     f"**{growth_verdict(growth[codec], growth[control])}**.")
        lines.append(line)
    near_4 = min(strides, key=lambda s: abs(s - 4))
    at_4 = trained[trained.heatmap_stride == near_4].groupby("method")[["NME (%)", "FR@0.1 (%)"]].mean()
    lines.append(f"* The lowest error at stride {near_4}: {lowest_text(at_4['NME (%)'], unit=' % NME')}.")
    return "\n".join(lines)



def runs_line(rows: pd.DataFrame, target_error: pd.DataFrame, strides) -> str:
    """What a resolution study (:func:`h3r.study.resolution_study`) holds, in one sentence: its
    runs (trained now and read back), its decoder-only evaluations, and the methods and strides
    of its target errors."""
    trained = rows[~rows.decoder_only]
    return (f"{len(trained)} runs ({int((~trained.cached).sum())} trained now, {int(trained.cached.sum())} read "
            f"back), {len(rows) - len(trained)} decoder-only evaluations;\ntarget errors of "
            f"{target_error.method.nunique()} methods at strides {list(strides)}")


def family_tables(trained: pd.DataFrame, target_error: pd.DataFrame,
                  degenerate: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Per family of :data:`h3r.study.FAMILIES`, :func:`with_target_errors` of its trained
    methods among ``trained``, in the family's order (deterministic rounding first)."""
    tables = {}
    for family, members in FAMILIES.items():
        family_rows = trained[trained.method.isin(members.values())]
        order = [c for c in members.values() if c in set(family_rows.method)]
        table = with_target_errors(family_rows, target_error, degenerate=degenerate)
        tables[family] = table.reindex(order).rename_axis(None)
    return tables


def difference_tables(diffs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per family, :func:`h3r.study.matched_differences` as the book shows them: indexed by
    treatment, control and stride, the difference in NME points and its 95 % interval as signed
    text, the number of seeds and the verdict."""
    shown = diffs.assign(**{"difference (NME points)": [difference_text(*r) for r in
                                                        zip(diffs["mean"], diffs.treatment_mean, diffs.control_mean)],
                            "95 % interval": [bounds_text(lo, hi) for lo, hi in zip(diffs.low, diffs.high)]})
    shown = shown.rename(columns={"heatmap_stride": "stride", "n": "seeds"})
    columns = ["difference (NME points)", "95 % interval", "seeds", "verdict"]
    return {family: table.set_index(["treatment", "control", "stride"])[columns]
            for family, table in shown.groupby("family", sort=False)}


def mechanism_table(learned: pd.DataFrame) -> pd.DataFrame:
    """:func:`h3r.study.mechanism`'s rows as a table by stride: the mass on the 4 neighbours, the
    error to the bilinear weights and the uniform baseline, each ``mean ± s.d.`` over seeds to 3
    decimals (:func:`h3r.stats.mean_spread`: one seed shows its value alone)."""
    return pd.concat([mean_spread(learned, "heatmap_stride", value=v, digits=3) for v in ("mass", "error", "uniform")],
                     axis=1)


def cost_pairs_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """:func:`h3r.study.cross_resolution` as the book shows it: per pair of input sizes, H3R minus
    argmax-round in NME points, its 95 % interval as text, the seeds, the verdict and H3R's share
    of argmax-round's MACs."""
    return pd.DataFrame({
        "h3r input": pairs["h3r input"], "argmax-round input": pairs["argmax-round input"],
        "difference (NME points)": [difference_text(*r) for r in
                                    zip(pairs["mean"], pairs.treatment_mean, pairs.control_mean)],
        "95 % interval": [bounds_text(lo, hi) for lo, hi in zip(pairs.low, pairs.high)], "seeds": pairs.n,
        "verdict": pairs.verdict.map(lambda v: SAID.get(v, v)), "MACs ratio": pairs["MACs ratio"].map("{:.2f}".format)})


def cost_answer(pairs: pd.DataFrame) -> str:
    """Chapter 7's answer: one Markdown bullet per pair of :func:`h3r.study.cross_resolution` where
    H3R has the smaller input, with its paired difference, verdict and share of the MACs."""
    below = pairs[pairs["h3r input"] < pairs["argmax-round input"]]
    lines = [f"* H3R at {r['h3r input']} px minus argmax-round at {r['argmax-round input']} px: "
             + f"{difference_text(r['mean'], r.treatment_mean, r.control_mean)} points "
             + (f"{bounds_text(r['low'], r['high'])} ({r['n']} seeds)" if r["n"] > 1 else "(one seed)")
             + f", **{SAID.get(r['verdict'], r['verdict'])}**, at {r['MACs ratio']:.2f} of the MACs"
             for _, r in below.iterrows()]
    return "\n".join(lines) or "One input size only: no smaller-against-larger pair."


def training_setup(base, params: int, macs: int) -> pd.Series:
    """How a profile trains, as the book states it: ``base``'s network (with ``params``
    parameters and ``macs`` multiply-accumulates per image), input, data, optimiser, schedule,
    test set and threads, as text by line."""
    return pd.Series({
        "network": f"{base.backbone} x{base.width_mult}" + (f", head width {base.head_width}" if base.head_width
                                                            else ""),
        "parameters": f"{params / 1e3:.0f} k",
        "MACs per image (stride 4)": f"{macs / 1e6:.1f} M",
        "input": f"{base.input_size} px",
        "training data": f"{base.train_samples} fresh faces x {base.epochs} epochs",
        "batch, optimiser": f"{base.batch_size}, {base.optimizer} lr {base.lr:g}",
        "schedule": base.schedule + (f", {base.warmup:.0%} linear warm-up" if base.warmup else ""),
        "test set": f"{base.test_samples} faces, flip test: {base.flip_test}",
        "threads per run": base.threads or "torch's default"})


def schedule_search(runs: list[dict]) -> pd.DataFrame:
    """The configurations tried for the cpu profile (``book/measurements/schedule_search.json``'s
    ``runs``) as the book shows them: network (widths and depths spaced so that a name can wrap),
    codec, stride, training, speed (images per CPU-second), NME and FR@0.1."""
    tried = pd.DataFrame(runs)
    width = tried.width.map(lambda w: "" if w in (None, 1.0) else f" x{w}")
    network = (tried.net.str.replace("timm:", "") + width).str.replace(",", ", ").str.replace("/", " / ")
    training = [f"{e} epochs, batch {b}, lr {lr:g}, {schedule}"
                for e, b, lr, schedule in zip(tried.epochs, tried.batch, tried.lr, tried.schedule)]
    return pd.DataFrame({"network": network, "codec": tried.codec.str.replace("argmax-", ""),
                         "stride": tried.stride, "training": training, "img / CPU-s": tried.img_s_cpu,
                         "NME (%)": tried.NME, "FR@0.1 (%)": tried.FR})



def activation_table(activation: pd.DataFrame) -> pd.DataFrame:
    """:func:`h3r.study.activation_points` as a ``points x "stride <s>"`` table of NME mean ± s.d.
    over seeds; "—" where the heatmap has fewer cells than the decoding's points."""
    table = mean_spread(activation, "points", "stride", value="nme")
    table.columns = [f"stride {s}" for s in table.columns]
    return table.fillna("—")


def head_table(head: pd.DataFrame) -> pd.DataFrame:
    """:func:`h3r.study.head_decodings` as a table by variant (in their order): mean and s.d.
    over seeds of the NME with the official decoder and with the log-odds."""
    return head.groupby("variant", sort=False)[["foreground (official)", "log-odds"]].agg(["mean", "std"])


def official_head_line(head: pd.DataFrame, trains_with: str) -> str:
    """Which loss of :func:`h3r.study.head_decodings`'s ``head`` gives the two-channel head the
    lowest error with the official decoder (mean over seeds), against the plain binary CE, and
    what ``h3r-official`` trains with (``trains_with``: its preset's loss)."""
    official = head.groupby("variant", sort=False)["foreground (official)"].mean()
    return (f"The lowest error with the official decoder (top-9 foreground logits): {lowest_text(official, name='**{}**')} NME, "
            f"against {official['binary CE']:.2f} % for the plain binary "
            f"cross-entropy. The two-channel head (`h3r-official`, and `loss='binary_ce'`) trains with "
            f"`{trains_with}` and its default prior, the variant marked *the default*.")


def ablations_answer(activation: pd.DataFrame, target_rows: pd.DataFrame, head: pd.DataFrame,
                     learned: pd.DataFrame, stride: int) -> str:
    """Chapter 6's answer in four Markdown bullets: top-1 against top-9 decoding at ``stride``
    (``activation``: :func:`h3r.study.activation_points`), the NME per target
    (``target_rows``: :func:`h3r.runs.run_variants`), the best head loss
    (``head``: :func:`h3r.study.head_decodings`) and whether the network learns the expected
    target (``learned``: :func:`h3r.study.mechanism`, by :data:`h3r.stats.MECHANISM_RULE`)."""
    at = activation[activation.stride == stride].groupby("points").nme.mean()
    targets = "; ".join(f"{v} {n:.2f} %" for v, n in
                        target_rows.groupby("variant", sort=False)["NME (%)"].mean().items())
    official = head.groupby("variant", sort=False)["foreground (official)"].mean()
    m = learned.groupby("heatmap_stride")[["mass", "error", "uniform"]].mean()
    grades = {s: mechanism_verdict(r.mass, r.error, r.uniform) for s, r in m.iterrows()}
    return (f"* **Activation points**, stride {stride}: top-1 {at['top-1']:.2f} % NME, top-9 {at['top-9']:.2f} %.\n"
            f"* **Target shape** (spatial-softmax CE, top-9): {targets}.\n"
            f"* **Two-channel head**, official decoder: lowest {lowest_text(official)}; plain binary CE "
            f"{official['binary CE']:.2f} %.\n"
            f"* **The network learns the expected target**: {stride_verdicts(grades)}. *Rule:* {MECHANISM_RULE}")




#: what bounds every learned finding of the default build, for a page to print once above the findings
CAVEATS = ("no GPU run: a small CPU network at 64 px; synthetic faces, not real images; the paper's own "
           "tables could not be read, so no paper number stands beside these")
#: the caveats cell of the findings that :data:`CAVEATS` bound
CAVEATS_TAG = "the build's (above the table)"




def findings(rows: pd.DataFrame, mechanism_rows: pd.DataFrame | None, activation: dict | None,
             theory: dict, official_costs: tuple[int, int] | None = None,
             degenerate: pd.DataFrame | None = None, cost: pd.DataFrame | None = None,
             answers: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The findings table: per claim of the paper, the chapter holding the evidence, the key
    numbers of this build, a verdict (by the rules of :mod:`h3r.stats`: supported, partly,
    mostly, not supported, contradicted, within noise, degenerate, or not tested here) and the
    caveats (:data:`CAVEATS_TAG` where they are :data:`CAVEATS`, which a page prints once).
    ``rows``: :func:`resolution_study`; ``mechanism_rows``: :func:`mechanism`; ``activation``: the
    NME of the H3R networks decoded from the top 1 and the top 9 cells; ``degenerate``:
    :func:`degenerate_cells`, whose cells no verdict reads; ``cost``: :func:`cross_resolution`;
    ``answers``: chapter 13's :func:`simcc_rounding_differences` and :func:`versus_nearest_cost`."""
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

    def growth(method) -> tuple[float, float, float]:
        """NME at the coarsest stride / at the finest, and the two NMEs (means over seeds)."""
        by = trained[trained.method == method].groupby("heatmap_stride")["NME (%)"].mean()
        fine, coarse = by.get(strides[0], float("nan")), by.get(strides[-1], float("nan"))
        return coarse / fine, fine, coarse

    if {"h3r", "onehot-round"} <= set(trained.method) and len(strides) > 1:
        grown = {m: growth(m) for m in ("h3r", "onehot-round", "argmax-round") if m in set(trained.method)}
        numbers = ", ".join(f"{m} {ratio_text(coarse, fine)} ({fine:.2f} → {coarse:.2f} %)"
                            for m, (r, fine, coarse) in grown.items())
        why = why_degenerate(reasons, ("h3r", "onehot-round"), (strides[0], strides[-1]))
        add(f"H3R's error stays nearly flat from fine to coarse heatmaps while vanilla's grows (strides "
            f"{strides[0]} to {strides[-1]})", "[5](05_heatmap_resolution.ipynb)",
            f"growth of the NME, stride {strides[-1]} over stride {strides[0]}: {numbers}",
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


# --- chapter 13: the other answers ------------------------------------------------------------------

def resolution_text(resolution: float) -> str:
    """``"4 px"`` (input pixels per cell or bin), ``"0.5 px"``, or ``"free"`` (NaN)."""
    return "free" if resolution != resolution else f"{resolution:g} px"


def answers_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`h3r.study.answers_summary` as the book shows it: per method and resolution, the NME
    (mean ± s.d. over seeds), parameters (k), MACs of backbone and head and of the head alone (M
    per image), and a ✓ on the Pareto front (head MACs against NME)."""
    return pd.DataFrame({
        "method": summary.method, "px per cell or bin": summary.resolution.map(resolution_text),
        "NME (%)": [f"{m:.2f}" if s != s else f"{m:.2f} ± {s:.2f}" for m, s in zip(summary.NME, summary.sd)],
        "params (k)": (summary.params / 1e3).map("{:.1f}".format), "MACs (M)": (summary.MACs / 1e6).map("{:.2f}".format),
        "head MACs (M)": (summary["head MACs"] / 1e6).map("{:.3f}".format),
        "Pareto": summary.pareto.map({True: "✓", False: ""})})


def simcc_rounding_table(diffs: pd.DataFrame) -> pd.DataFrame:
    """:func:`h3r.study.simcc_rounding_differences` as the book shows it, one row per bin width."""
    return pd.DataFrame({
        "bin width": diffs.resolution.map(resolution_text),
        "difference (NME points)": [difference_text(*r) for r in zip(diffs["mean"], diffs.treatment_mean,
                                                                      diffs.control_mean)],
        "95 % interval": [bounds_text(lo, hi) for lo, hi in zip(diffs.low, diffs.high)], "seeds": diffs.n,
        "verdict": diffs.verdict.map(lambda v: SAID.get(v, v))})


def versus_table(versus: pd.DataFrame) -> pd.DataFrame:
    """:func:`h3r.study.versus_nearest_cost` as the book shows it: per other method, H3R's stride
    of nearest head cost, the head-MACs ratio (H3R's over the method's), H3R minus the method and
    how it reads; a degenerate cell is marked † (why: below the table)."""
    return pd.DataFrame({
        "method": versus.method, "px per cell or bin": versus.resolution.map(resolution_text),
        "H3R stride": versus["h3r stride"].map("{:g}".format),
        "head MACs, H3R / it": (versus["h3r head MACs"] / versus["head MACs"]).map("{:.2f}".format),
        "H3R minus it (NME points)": [interval_text(r) for _, r in versus.iterrows()],
        "reads": [f"{r} †" if why else r for r, why in zip(versus.reads, versus.reason)]})


def answers_answer(simcc: pd.DataFrame, versus: pd.DataFrame, summary: pd.DataFrame) -> str:
    """Chapter 13's answer in three Markdown lines: randomized rounding on SimCC's bins (the paired
    differences per bin width and their verdicts), H3R against every other method at its nearest
    head cost (grouped by how it reads), and the methods on the Pareto front."""
    lines = []
    if len(simcc):
        numbers = "; ".join(f"{resolution_text(r.resolution)} bins: {interval_text(r)}" for _, r in simcc.iterrows())
        lines.append(f"* **Randomized rounding on SimCC's bins** (`simcc-random` minus `simcc-round`, NME points, "
                     f"95 % interval over seeds): {numbers}. It lowers the error: "
                     f"**{stride_verdicts(dict(zip(simcc.resolution, simcc.verdict)), unit='bin width')}**.")
    if len(versus):
        named = {reads: ", ".join(f"`{m}` ({resolution_text(r)})" for m, r in zip(cells.method, cells.resolution))
                 for reads, cells in versus.groupby("reads", sort=False)}
        order = ("H3R better", "H3R worse", "within noise", "degenerate")
        lines.append("* **H3R against each other method at its nearest head cost** (paired by seed): "
                     + "; ".join(f"{reads}: {named[reads]}" for reads in order if reads in named) + ".")
    front = summary[summary.pareto].sort_values("head MACs")
    lines.append("* **On the Pareto front** (head MACs against NME): "
                 + ", ".join(f"`{m}` ({resolution_text(r)}, {n:.2f} %)"
                             for m, r, n in zip(front.method, front.resolution, front.NME)) + ".")
    return "\n".join(lines)


def presets_table(names=None) -> pd.DataFrame:
    """The codec presets (:data:`h3r.config.PRESETS`, or those of ``names``): what each trains and
    decodes with, the names ``h3r train --codec`` takes. Columns: codec class, its arguments, loss,
    head, and whether a study sets its Gaussian's sigma."""
    from h3r.config import PRESETS

    names = list(PRESETS) if names is None else list(names)
    return pd.DataFrame({"codec": [PRESETS[n].codec for n in names],
                         "arguments": [", ".join(f"{k}={v}" for k, v in PRESETS[n].args.items()) for n in names],
                         "loss": [PRESETS[n].loss for n in names], "head": [PRESETS[n].head for n in names],
                         "sigma": ["✓" if PRESETS[n].sigma else "" for n in names]},
                        index=pd.Index(names, name="preset"))


#: the methods of chapter 13 that answer the sub-pixel problem otherwise than H3R (the heatmap
#: baselines of chapter 5 are its own rows)
OTHER_ANSWERS_EXCLUDE = ("argmax-round", "dark")


def answers_findings(simcc: pd.DataFrame, versus: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """The findings rows of chapter 13, ``(claim, evidence, key numbers, verdict)``: randomized
    rounding on SimCC's bins (:func:`h3r.stats.stride_verdicts` per bin width), and H3R against
    each other answer at its nearest head cost: supported (contradicted, within noise) against
    every one where every judged one reads so, else ``mixed`` with how many read each way."""
    link, rows = "[13](13_other_answers.ipynb)", []
    if len(simcc):
        numbers = "; ".join(f"{resolution_text(r.resolution)} bins: {interval_text(r)}" for _, r in simcc.iterrows())
        rows.append(("(beyond the paper) Randomized rounding helps coordinate classification (SimCC's bins) as it "
                     "helps heatmaps", link,
                     f"paired NME difference, simcc-random minus simcc-round, mean [95 % interval]: {numbers}",
                     stride_verdicts(dict(zip(simcc.resolution, simcc.verdict)), unit="bin width")))
    others = versus[~versus.method.isin(OTHER_ANSWERS_EXCLUDE)] if len(versus) else versus
    if len(others):
        numbers = "; ".join(f"{r.method} ({resolution_text(r.resolution)}): {interval_text(r)}"
                            for _, r in others.iterrows())
        judged = others[others.verdict != "degenerate"].reads.value_counts()
        overall = {"H3R better": "supported", "H3R worse": "contradicted", "within noise": "within noise"}
        result = ("degenerate" if judged.empty else f"{overall[judged.index[0]]} against every one"
                  if len(judged) == 1 else "mixed: " + ", ".join(f"{r} {n} of {judged.sum()}" for r, n in judged.items()))
        rows.append(("(beyond the paper) H3R localises better than coordinate classification, integral and "
                     "likelihood regression and a local soft-argmax, each at its nearest head cost", link,
                     f"paired NME difference, H3R minus each, mean [95 % interval]: {numbers}", result))
    return rows
