"""Chapter 5, accuracy against heatmap resolution: the matched families (only the rounding differs),
the as-published codecs, their runs at every stride, the target errors beside them, the cells a
decoder cannot work on (degenerate), the paired differences and the growth, and the chapter's
tables and sentences. Chapters 4, 6, 7, 13 and 14 and the findings read these runs back.
"""
from __future__ import annotations

import dataclasses
import itertools

import pandas as pd

from h3r.config import Config, preset, preset_args
from h3r.runs import ROW_METRICS, reevaluate_decoders, run_grid
from h3r.stats import (bounds_text, difference_text, growth_verdict, interval_text, lowest_text, mean_spread,
                       paired_differences, ratio_text, stride_verdicts, strides_text, verdict)

# --- the design and its numbers ------------------------------------------------------------


#: family -> rounding -> the codec preset trained with it (see the module docstring)
FAMILIES: dict[str, dict[str, str]] = {
    "one-hot target, spatial-softmax CE": {
        "deterministic": "onehot-round",   # the rounded cell, decoded by argmax
        "randomized": "h3r",               # a randomized-rounding draw, decoded from the top 9 cells
    },
    "Gaussian target, MSE": {
        "deterministic": "argmax-round",   # a Gaussian on the rounded cell, decoded by argmax
        "randomized": "gauss-random",      # a Gaussian on a randomized-rounding draw, decoded by DARK
        "none (exact)": "dark",            # a Gaussian on the exact point, decoded by DARK
    },
}


#: the presets as published, each with its own target, loss and decoder
AS_PUBLISHED = ("argmax-round", "dark", "udp", "soft-argmax", "h3r")


#: decoder-only variants: (decoder preset, the trained codec it reads), no training of their own
DECODER_ONLY = (("argmax-quarter", "argmax-round"), ("dark", "argmax-round"), ("h3r", "onehot-round"),
                ("onehot-round", "h3r"))


def study_codecs(as_published=True) -> list[str]:
    """Every codec the resolution study trains: the families' and the published ones
    (``as_published``: True for :data:`AS_PUBLISHED`, False for none, or a list of presets)."""
    codecs = [c for family in FAMILIES.values() for c in family.values()]
    published = list(AS_PUBLISHED) if as_published is True else list(as_published or [])
    return list(dict.fromkeys(codecs + published))


def family_of(codec: str) -> list[tuple[str, str]]:
    """The (family, rounding) pairs a codec belongs to."""
    return [(family, rounding) for family, members in FAMILIES.items() for rounding, c in members.items()
            if c == codec]


def resolution_study(base: Config, strides, seeds, codecs=None, sigma: float | None = None,
                     force: bool = False, published_seeds=None, published_strides=None,
                     decoder_only=DECODER_ONLY) -> pd.DataFrame:
    """Train (or read back) every codec at every stride and seed (the Gaussian codecs with
    ``sigma``, :func:`codec_args`); one row per run, with the decoder-only variants of
    ``decoder_only`` (default :data:`DECODER_ONLY`) added as rows of their own (``method`` is the codec, or
    ``"<decoder> on <trained codec>"``; ``decoder_only`` says which; ``predictions`` is the file
    of its test predictions, which a benchmark's own metrics read: :mod:`h3r.study.pose`).

    ``published_seeds`` (default: ``seeds``) are the seeds of the codecs outside every family (the
    as-published references), ``published_strides`` (default: ``strides``) the strides of
    ``strides`` they are trained at: the paired comparisons need every seed and stride only inside
    a family."""
    codecs = study_codecs() if codecs is None else list(codecs)

    def axes(codec: str) -> tuple[list, list]:
        if family_of(codec):
            return list(strides), list(seeds)
        return ([s for s in strides if published_strides is None or s in published_strides],
                list(seeds if published_seeds is None else published_seeds))

    configs = [dataclasses.replace(base, preset=codec, codec_args=preset_args(codec, sigma), heatmap_stride=stride,
                                   seed=seed)
               for codec in codecs for stride, seed in itertools.product(*axes(codec))]
    runs = run_grid(configs, force=force)
    runs["method"], runs["decoder_only"] = runs.preset, False
    runs["predictions"] = [f"{run}/predictions.pt" for run in runs.run]
    extra = decoder_only_rows(runs, decoder_only, sigma)
    return pd.concat([runs, extra], ignore_index=True) if len(extra) else runs


def decoder_only_rows(runs: pd.DataFrame, pairs, sigma: float | None = None) -> pd.DataFrame:
    """Rows of decoder-only methods: for each ``(decoder, trained codec)`` of ``pairs``, every run
    of ``runs`` with that codec re-evaluated with that decoder (:func:`h3r.runs.reevaluate_decoders`,
    the study's ``sigma``); the run's row with ``method`` ``"<decoder> on <codec>"``,
    ``decoder_only`` True, the new metrics and their ``predictions`` file. Empty where no run
    has such a codec."""
    extra = []
    for trained in dict.fromkeys(trained for _, trained in pairs):
        decoders = [decoder for decoder, of in pairs if of == trained]
        for row in runs[runs.preset == trained].to_dict("records"):
            evaluations = reevaluate_decoders(row["config"], [(d, preset_args(d, sigma)) for d in decoders])
            extra += [{**row, "method": f"{decoder} on {trained}", "decoder_only": True,
                       "predictions": evaluation["predictions"],
                       **{m: evaluation["summary"]["all"][m] for m in ROW_METRICS}}
                      for decoder, evaluation in zip(decoders, evaluations)]
    return pd.DataFrame(extra, columns=runs.columns)


def resolution_runs(settings, codecs=None, force: bool = False, decoder_only=DECODER_ONLY) -> pd.DataFrame:
    """Chapter 5's runs as every chapter reads them: :func:`resolution_study` with the resolved
    settings of chapter ``heatmap_resolution`` (:func:`h3r.profiles.open_chapter` in chapter 5,
    :func:`h3r.profiles.reading` in the chapters that read its runs), every codec of
    :func:`study_codecs` or only ``codecs``, with the decoder-only variants of ``decoder_only``.
    One home for those settings, so that every chapter asks for the same configs, hence the same
    run keys."""
    codecs = study_codecs(settings.as_published) if codecs is None else list(codecs)
    return resolution_study(settings.base, settings.strides, settings.seeds, codecs, sigma=settings.sigma,
                            force=force, published_seeds=settings.published_seeds,
                            published_strides=settings.published_strides, decoder_only=decoder_only)


def nearest_stride(strides, target: int = 4) -> int:
    """The stride of ``strides`` nearest ``target`` (the paper's stride 4): the one a chapter shows
    when it shows one."""
    return min(strides, key=lambda s: abs(s - target))


def decoder_of(method: str) -> str:
    """The preset that decodes ``method``: the codec itself, or the decoder of ``"<decoder> on <codec>"``."""
    return method.split(" on ")[0]


def degenerate_cells(methods, strides, input_size, sigma: float | None = None) -> pd.DataFrame:
    """The cells (method, stride) whose decoder is degenerate on the heatmap of ``input_size`` at
    that stride (:meth:`h3r.codecs.Codec.degenerate`, with the study's ``sigma``): a decoder-only
    method ``"X on Y"`` where its decoder ``X`` is. Columns ``method, heatmap_stride, reason``."""
    from h3r.codecs import build_codec

    rows = []
    for method, stride in itertools.product(methods, strides):
        decoder = decoder_of(method)
        reason = build_codec(decoder, input_size, stride=stride, **preset_args(decoder, sigma)).degenerate()
        if reason:
            rows.append({"method": method, "heatmap_stride": stride, "reason": reason})
    return pd.DataFrame(rows, columns=["method", "heatmap_stride", "reason"])


def degenerate_reasons(degenerate: pd.DataFrame | None) -> dict[tuple[str, int], str]:
    """(method, stride) -> why that cell is degenerate, from :func:`degenerate_cells` (None: none)."""
    if degenerate is None:
        return {}
    return {(m, s): r for m, s, r in degenerate[["method", "heatmap_stride", "reason"]].itertuples(index=False)}


def why_degenerate(reasons: dict, methods, strides) -> str:
    """The distinct reasons, joined, why any of ``methods`` is degenerate at any of ``strides``."""
    return "; ".join(dict.fromkeys(r for m in methods for s in strides if (r := reasons.get((m, s)))))


def matched_differences(rows: pd.DataFrame, value: str = "NME (%)",
                        degenerate: pd.DataFrame | None = None, claimed: str = "lower") -> pd.DataFrame:
    """Per family and stride, the paired per-seed difference of every rounding against the
    family's deterministic rounding (the control), with its 95 % interval
    (:func:`h3r.stats.paired_differences`). Negative: the treatment has the lower error.

    ``verdict`` is :func:`h3r.stats.verdict` on the claim that the treatment's ``value`` is
    ``claimed`` (lower for an error, higher for a PCKh or an AP), or ``"degenerate"`` where the treatment's or the control's cell is (``degenerate``:
    :func:`degenerate_cells`); ``reason`` says why ("" elsewhere)."""
    trained = rows[~rows.decoder_only]
    reasons = degenerate_reasons(degenerate)
    out = []
    for family, members in FAMILIES.items():
        control = members["deterministic"]
        for rounding, codec in members.items():
            if rounding == "deterministic" or not {codec, control} <= set(trained.method):
                continue
            diff = paired_differences(trained, codec, control, value=value)
            why = [why_degenerate(reasons, (codec, control), [s]) for s in diff.heatmap_stride]
            judged = ["degenerate" if w else verdict(lo, hi, claimed) for w, lo, hi in zip(why, diff.low, diff.high)]
            out.append(diff.assign(family=family, rounding=rounding, verdict=judged, reason=why))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def target_errors(base: Config, strides, codecs, sigma: float | None = None, decoder_only=DECODER_ONLY,
                  seed: int = 0) -> pd.DataFrame:
    """The target error of each method on the test faces ``base`` is evaluated on, at each
    stride: the codec-only NME (%) of the codec's training target (the expected target for
    randomized codecs) decoded by its own decoder, and for a decoder-only method
    ``"<decoder> on <codec>"`` (of those whose codec is among ``codecs``) that target read by the
    other decoder (:func:`h3r.analysis.decoder_input`); through the same crop, flip test and
    normaliser as the learned runs, with no network. It is the error of a network that
    reproduced its training target exactly, which a network beats when its output is not its
    target (see the module docstring). Columns ``method, heatmap_stride, target_error``."""
    from h3r.analysis import RoundTrip, codec_nme_table, landmark_set
    from h3r.train import build_data

    dataset = build_data(base, base.test_split, train=False)
    if getattr(dataset, "transform", None) is not None:
        dataset.transform.augment = None
    trips = {codec: RoundTrip(codec, preset(codec).target) for codec in codecs}
    trips.update({f"{decoder} on {codec}": RoundTrip(codec, preset(codec).target, decoder)
                  for decoder, codec in decoder_only if codec in codecs})
    table = codec_nme_table([landmark_set(dataset)], list(strides), trips, flip_test=base.flip_test, seed=seed,
                            codec_args=lambda name: preset_args(name, sigma))
    table = table.rename(columns={"codec": "method", "stride": "heatmap_stride", "nme": "target_error"})
    return table[["method", "heatmap_stride", "target_error"]]


def per_face_nme(runs: pd.DataFrame) -> dict:
    """Per trained run of ``runs`` (labelled by its preset), the NME of every test face (N,), as a
    fraction of the normaliser, from the run's ``predictions.pt``."""
    import torch

    return {row.preset: torch.load(f"{row.run}/predictions.pt", weights_only=False)["nme"]
            for row in runs.itertuples()}


#: (treatment, control) pairs of chapter 5's runs beyond the families: H3R against the refined
#: Gaussian decoders, and H3R's decoder alone on the deterministic network
VERSUS = (("h3r", "dark"), ("h3r", "udp"), ("h3r on onehot-round", "onehot-round"))


def versus_differences(rows: pd.DataFrame, pairs=VERSUS, degenerate: pd.DataFrame | None = None,
                       value: str = "NME (%)", claimed: str = "lower") -> pd.DataFrame:
    """Paired per-seed differences (:func:`h3r.stats.paired_differences`) of each
    ``(treatment, control)`` of ``pairs`` whose methods are both among ``rows`` (trained runs and
    decoder-only rows alike), per stride, of ``value``, with ``verdict`` (on the claim that the
    treatment's value is ``claimed``) and ``reason`` as in :func:`matched_differences`."""
    reasons = degenerate_reasons(degenerate)
    out = []
    for treatment, control in pairs:
        if not {treatment, control} <= set(rows.method):
            continue
        diff = paired_differences(rows, treatment, control, value=value)
        why = [why_degenerate(reasons, (treatment, control), [s]) for s in diff.heatmap_stride]
        judged = ["degenerate" if w else verdict(lo, hi, claimed) for w, lo, hi in zip(why, diff.low, diff.high)]
        out.append(diff.assign(verdict=judged, reason=why))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


# --- its tables and sentences ------------------------------------------------------------


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


def coarsest_judged(strides, reasons: dict, methods) -> int:
    """The coarsest of ``strides`` at which none of ``methods`` is degenerate (``reasons``:
    :func:`degenerate_reasons`), else the finest: where a growth is read."""
    judged = [s for s in sorted(strides) if not why_degenerate(reasons, methods, [s])]
    return judged[-1] if judged else min(strides)


def family_growth(rows: pd.DataFrame, degenerate: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per family of :data:`FAMILIES`, the growth of the randomized and the deterministic codec's
    NME (mean over seeds) from the finest stride to the coarsest judged one
    (:func:`coarsest_judged`) and :func:`h3r.stats.growth_verdict`. Columns ``family, codec,
    control, fine, coarse, skipped`` (the degenerate strides above it), ``codec_fine``,
    ``codec_coarse``, ``control_fine``, ``control_coarse``, ``verdict``."""
    trained = rows[~rows.decoder_only]
    strides = sorted(trained.heatmap_stride.unique())
    mean = trained.groupby(["method", "heatmap_stride"])["NME (%)"].mean()
    reasons, out = degenerate_reasons(degenerate), []
    for family, members in FAMILIES.items():
        control, codec = members["deterministic"], members["randomized"]
        if len(strides) < 2 or not {codec, control} <= set(trained.method):
            continue
        fine, coarse = strides[0], coarsest_judged(strides, reasons, (codec, control))
        if coarse == fine:
            continue
        values = {f"{who}_{at}": mean[m, s] for who, m in (("codec", codec), ("control", control))
                  for at, s in (("fine", fine), ("coarse", coarse))}
        out.append({"family": family, "codec": codec, "control": control, "fine": fine, "coarse": coarse,
                    "skipped": [s for s in strides if s > coarse], **values,
                    "verdict": growth_verdict(values["codec_coarse"] / values["codec_fine"],
                                              values["control_coarse"] / values["control_fine"])})
    return pd.DataFrame(out)


def growth_text(g) -> str:
    """One row of :func:`family_growth` in words: the two growths with their terms, and which
    degenerate strides it skips."""
    skipped = (f"; {strides_text(g.skipped)} degenerate, so read at stride {g.coarse}" if g.skipped else "")
    return (f"`{g.codec}` {ratio_text(g.codec_coarse, g.codec_fine)}, `{g.control}` "
            f"{ratio_text(g.control_coarse, g.control_fine)} (stride {g.fine} to {g.coarse}{skipped})")


def resolution_answer(rows: pd.DataFrame, degenerate: pd.DataFrame | None = None) -> str:
    """Chapter 5's answer in three Markdown lines, from its runs: whether randomized rounding lowers
    the error, per family and stride (:data:`h3r.stats.VERDICT_RULE`); whether its error stays
    nearly flat (:func:`family_growth`); the lowest error at the stride nearest 4. The numbers
    behind the first line are :func:`resolution_numbers`."""
    trained = rows[~rows.decoder_only]
    strides = sorted(trained.heatmap_stride.unique())
    diffs = matched_differences(rows, degenerate=degenerate)
    lowers = []
    for family, members in FAMILIES.items():
        d = diffs[(diffs.family == family) & (diffs.treatment == members["randomized"])] if len(diffs) else diffs
        if len(d):
            lowers.append(f"{family}: {stride_verdicts(dict(zip(d.heatmap_stride, d.verdict)))}")
    lines = [f"* **Does randomized rounding lower the error?** {'; '.join(lowers)}."] if lowers else []
    growth = family_growth(rows, degenerate)
    if len(growth):
        lines.append("* **Does its error stay nearly flat?** " + "; ".join(
            f"{g.family}: **{g.verdict}**, {growth_text(g)}" for g in growth.itertuples()) + ".")
    near_4 = min(strides, key=lambda s: abs(s - 4))
    at_4 = trained[trained.heatmap_stride == near_4].groupby("method")["NME (%)"].mean()
    lines.append(f"* **The lowest error at stride {near_4}**: {lowest_text(at_4, unit=' % NME')}.")
    return "\n".join(lines)


def resolution_numbers(rows: pd.DataFrame, degenerate: pd.DataFrame | None = None) -> str:
    """The paired differences behind :func:`resolution_answer`'s first line, one Markdown line per
    family: randomized minus deterministic rounding at each stride, its 95 % interval, and the
    degenerate strides named with their reason."""
    diffs = matched_differences(rows, degenerate=degenerate)
    lines = []
    for family, members in FAMILIES.items():
        control, codec = members["deterministic"], members["randomized"]
        d = diffs[(diffs.family == family) & (diffs.treatment == codec)] if len(diffs) else diffs
        if d.empty:
            continue
        verdicts = stride_verdicts(dict(zip(d.heatmap_stride, d.verdict)),
                                   {s: r for s, r in zip(d.heatmap_stride, d.reason) if r})
        numbers = "; ".join(f"stride {r.heatmap_stride}: {interval_text(r)}" for _, r in d.iterrows())
        lines.append(f"* **{family}**: `{codec}` minus `{control}`, NME points (95 % interval over seeds): "
                     f"{numbers}: **{verdicts}**.")
    return "\n".join(lines)


def runs_line(rows: pd.DataFrame, target_error: pd.DataFrame, strides) -> str:
    """What a resolution study (:func:`h3r.study.resolution.resolution_study`) holds, in one sentence: its
    runs (trained now and read back), its decoder-only evaluations, and the methods and strides
    of its target errors."""
    trained = rows[~rows.decoder_only]
    return (f"{len(trained)} runs ({int((~trained.cached).sum())} trained now, {int(trained.cached.sum())} read "
            f"back), {len(rows) - len(trained)} decoder-only evaluations;\ntarget errors of "
            f"{target_error.method.nunique()} methods at strides {list(strides)}")


def family_tables(trained: pd.DataFrame, target_error: pd.DataFrame,
                  degenerate: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Per family of :data:`h3r.study.resolution.FAMILIES`, :func:`with_target_errors` of its trained
    methods among ``trained``, in the family's order (deterministic rounding first)."""
    tables = {}
    for family, members in FAMILIES.items():
        family_rows = trained[trained.method.isin(members.values())]
        order = [c for c in members.values() if c in set(family_rows.method)]
        table = with_target_errors(family_rows, target_error, degenerate=degenerate)
        tables[family] = table.reindex(order).rename_axis(None)
    return tables


def difference_tables(diffs: pd.DataFrame, unit: str = "NME points") -> dict[str, pd.DataFrame]:
    """Per family, :func:`h3r.study.resolution.matched_differences` as the book shows them: indexed by
    treatment, control and stride, the difference (in ``unit``) and its 95 % interval as signed
    text, the number of seeds and the verdict."""
    difference = f"difference ({unit})"
    shown = diffs.assign(**{difference: [difference_text(*r) for r in
                                         zip(diffs["mean"], diffs.treatment_mean, diffs.control_mean)],
                            "95 % interval": [bounds_text(lo, hi) for lo, hi in zip(diffs.low, diffs.high)]})
    shown = shown.rename(columns={"heatmap_stride": "stride", "n": "seeds"})
    columns = [difference, "95 % interval", "seeds", "verdict"]
    return {family: table.set_index(["treatment", "control", "stride"])[columns]
            for family, table in shown.groupby("family", sort=False)}
