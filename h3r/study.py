"""The study's design: which runs answer which claim, and the numbers the book reads off them.

The paper's central claim is about *rounding*: randomized rounding keeps the fractional part of a
keypoint in the expected target, so a coarse heatmap localises about as well as a fine one, while
deterministic rounding loses it. A comparison tests that claim only where nothing but the rounding
differs. :data:`FAMILIES` holds the matched controls: within a family the network, the data, the
seed, the schedule, the target's shape and the loss are the same, and only the encoder's rounding
differs (each with the decoder that can read its target). :data:`AS_PUBLISHED` holds the presets as
their papers publish them, each with its own target and loss, for reference.

Every learned number has its target error beside it (:func:`target_errors`, :mod:`h3r.analysis`):
the NME of the method's training target decoded by the method's decoder, with no network, on the
same test faces at the same heatmap size. It is the error of a network that reproduced its
training target exactly, not a floor: a network beats it when its output is not its training
target, e.g. where a decoder reads sub-cell information from a network's smooth output
(argmax-quarter, DARK on a rounded Gaussian), or for soft-argmax, whose L1 loss on the coordinates
does not make the network output a Gaussian at all.

A cell is degenerate (:func:`degenerate_cells`) where its decoder cannot do on that heatmap size
what it is meant to (DARK's Taylor step on a 4×4 map, which no peak can take: it decodes the
argmax); such cells are marked and kept out of the verdicts.

This module designs and schedules the runs and derives their numbers (paired differences with
their verdicts, by the rules of :mod:`h3r.stats`); :mod:`h3r.report` turns those into the tables
and sentences the book shows.
"""
from __future__ import annotations

import dataclasses
import itertools
import json

import pandas as pd

from h3r.config import Config, preset, preset_args
from h3r.profiles import CHAPTERS, chapter
from h3r.runs import ROW_METRICS, load_run, reevaluate_decoders, run_grid
from h3r.stats import paired_differences, verdict

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

def study_codecs(as_published: bool = True) -> list[str]:
    """Every codec the resolution study trains: the families' and, optionally, the published ones."""
    codecs = [c for family in FAMILIES.values() for c in family.values()]
    return list(dict.fromkeys(codecs + (list(AS_PUBLISHED) if as_published else [])))


def family_of(codec: str) -> list[tuple[str, str]]:
    """The (family, rounding) pairs a codec belongs to."""
    return [(family, rounding) for family, members in FAMILIES.items() for rounding, c in members.items()
            if c == codec]


def resolution_study(base: Config, strides, seeds, codecs=None, sigma: float | None = None,
                     force: bool = False, published_seeds=None, published_strides=None) -> pd.DataFrame:
    """Train (or read back) every codec at every stride and seed (the Gaussian codecs with
    ``sigma``, :func:`codec_args`); one row per run, with the decoder-only variants of
    :data:`DECODER_ONLY` added as rows of their own (``method`` is the codec, or
    ``"<decoder> on <trained codec>"``; ``decoder_only`` says which).

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

    configs = [dataclasses.replace(base, codec=codec, codec_args=preset_args(codec, sigma), heatmap_stride=stride,
                                   seed=seed)
               for codec in codecs for stride, seed in itertools.product(*axes(codec))]
    runs = run_grid(configs, force=force)
    runs["method"], runs["decoder_only"] = runs.codec, False
    extra = decoder_only_rows(runs, DECODER_ONLY, sigma)
    return pd.concat([runs, extra], ignore_index=True) if len(extra) else runs


def decoder_only_rows(runs: pd.DataFrame, pairs, sigma: float | None = None) -> pd.DataFrame:
    """Rows of decoder-only methods: for each ``(decoder, trained codec)`` of ``pairs``, every run
    of ``runs`` with that codec re-evaluated with that decoder (:func:`h3r.runs.reevaluate_decoders`,
    the study's ``sigma``); the run's row with ``method`` ``"<decoder> on <codec>"``,
    ``decoder_only`` True and the new metrics. Empty where no run has such a codec."""
    extra = []
    for trained in dict.fromkeys(trained for _, trained in pairs):
        decoders = [decoder for decoder, of in pairs if of == trained]
        for row in runs[runs.codec == trained].to_dict("records"):
            evaluations = reevaluate_decoders(row["config"], [(d, preset_args(d, sigma)) for d in decoders])
            extra += [{**row, "method": f"{decoder} on {trained}", "decoder_only": True,
                       **{m: evaluation["summary"]["all"][m] for m in ROW_METRICS}}
                      for decoder, evaluation in zip(decoders, evaluations)]
    return pd.DataFrame(extra, columns=runs.columns)


def resolution_runs(profile: str, codecs=None, force: bool = False, **overrides) -> pd.DataFrame:
    """Chapter 5's runs as every chapter reads them: :func:`resolution_study` with the settings
    of chapter ``heatmap_resolution`` under ``profile`` (:func:`h3r.profiles.chapter`, with
    ``overrides``: ``None`` is the profile's value), every codec of :func:`study_codecs` or only
    ``codecs``. One home for those settings, so that every chapter asks for the same configs,
    hence the same run keys."""
    cfg = chapter("heatmap_resolution", profile, **overrides)
    codecs = study_codecs(cfg.as_published) if codecs is None else list(codecs)
    return resolution_study(cfg.base, cfg.strides, cfg.seeds, codecs, sigma=cfg.sigma, force=force,
                            published_seeds=cfg.published_seeds, published_strides=cfg.published_strides)


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
                        degenerate: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per family and stride, the paired per-seed difference of every rounding against the
    family's deterministic rounding (the control), with its 95 % interval
    (:func:`h3r.stats.paired_differences`). Negative: the treatment has the lower error.

    ``verdict`` is :func:`h3r.stats.verdict` on the claim that the treatment's error is
    lower, or ``"degenerate"`` where the treatment's or the control's cell is (``degenerate``:
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
            judged = ["degenerate" if w else verdict(lo, hi) for w, lo, hi in zip(why, diff.low, diff.high)]
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


def learning_curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Test NME against epoch, from each run's ``metrics.jsonl`` (the per-epoch evaluations of a
    config with ``eval_every``); columns ``method, heatmap_stride, seed, epoch, NME (%)``."""
    out = []
    for row in rows[~rows.get("decoder_only", False)].itertuples():
        path = row.config.run_dir() / "metrics.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            log = json.loads(line)
            if "eval" in log:
                out.append({"method": row.method if hasattr(row, "method") else row.codec,
                            "heatmap_stride": row.heatmap_stride, "seed": row.seed, "epoch": log["epoch"],
                            "NME (%)": log["eval"]["NME (%)"], "loss": log["loss"]})
    return pd.DataFrame(out, columns=["method", "heatmap_stride", "seed", "epoch", "NME (%)", "loss"])


def per_face_nme(runs: pd.DataFrame) -> dict:
    """Per trained run of ``runs`` (labelled by its codec), the NME of every test face (N,), as a
    fraction of the normaliser, from the run's ``predictions.pt``."""
    import torch

    return {row.codec: torch.load(f"{row.run}/predictions.pt", weights_only=False)["nme"]
            for row in runs.itertuples()}


# --- other comparisons the findings read -----------------------------------------------------------

#: (treatment, control) pairs of chapter 5's runs beyond the families: H3R against the refined
#: Gaussian decoders, and H3R's decoder alone on the deterministic network
VERSUS = (("h3r", "dark"), ("h3r", "udp"), ("h3r on onehot-round", "onehot-round"))


def versus_differences(rows: pd.DataFrame, pairs=VERSUS, degenerate: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paired per-seed differences (:func:`h3r.stats.paired_differences`) of each
    ``(treatment, control)`` of ``pairs`` whose methods are both among ``rows`` (trained runs and
    decoder-only rows alike), per stride, with ``verdict`` and ``reason`` as in
    :func:`matched_differences`."""
    reasons = degenerate_reasons(degenerate)
    out = []
    for treatment, control in pairs:
        if not {treatment, control} <= set(rows.method):
            continue
        diff = paired_differences(rows, treatment, control)
        why = [why_degenerate(reasons, (treatment, control), [s]) for s in diff.heatmap_stride]
        judged = ["degenerate" if w else verdict(lo, hi) for w, lo, hi in zip(why, diff.low, diff.high)]
        out.append(diff.assign(verdict=judged, reason=why))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


# --- accuracy against cost: input resolution --------------------------------------------------------

#: the codecs compared across input sizes: vanilla heatmap regression and H3R
COST_CODECS = ("argmax-round", "h3r")


def cost_study(base: Config, input_sizes, seeds, sigma: float | None = None, stride: int = 4,
               force: bool = False) -> pd.DataFrame:
    """:data:`COST_CODECS` trained (or read back) at each input size of ``input_sizes`` (heatmap
    ``stride``), every seed of ``seeds``; one row per run with its ``input_size`` and ``GMACs``
    (per image, backbone and head). The runs at ``base``'s input size are chapter 5's."""
    frames = [resolution_study(dataclasses.replace(base, input_size=size), [stride], seeds, COST_CODECS,
                               sigma=sigma, force=force) for size in input_sizes]
    runs = pd.concat(frames, ignore_index=True)
    return runs[~runs.decoder_only].assign(GMACs=lambda r: r.macs / 1e9)


def cost_runs(profile: str, force: bool = False, **overrides) -> pd.DataFrame:
    """Chapter 7's runs as every chapter reads them: :func:`cost_study` with the input sizes and
    seeds of chapter ``cost`` under ``profile`` (with ``overrides``, as :func:`resolution_runs`)
    and the Gaussian targets' sigma of chapter 5, whose runs they share at its input size."""
    cfg = chapter("cost", profile, **overrides)
    sigma = CHAPTERS["heatmap_resolution"][profile]["sigma"]
    return cost_study(cfg.base, cfg.input_sizes, cfg.seeds, sigma=sigma, force=force)


#: the networks whose cost chapter 7 counts: the paper's two (backbone, its README name)
PAPER_NETWORKS = (("hrnet_w18", "HRNet-W18"), ("mobilenet_v2", "MobileNetV2"))


def readme_costs(datasets=(("WFLW", 98), ("300W", 68)), sizes=(256, 160, 128)) -> pd.DataFrame:
    """Parameters and FLOPs of the paper's networks with the official two-channel head, counted
    on h3r's models beside the official README's, per (dataset, K keypoints) of ``datasets`` and
    input size of ``sizes``: thop-style FLOPs count BatchNorm, the MACs column does not. One row
    per network, indexed by ``"<network>, <dataset> (<K> points), <size> px"``."""
    from h3r.models import build_model, count_flops, count_params
    from h3r.reported import reported

    rows = []
    for (dataset, k), (backbone, label) in itertools.product(datasets, PAPER_NETWORKS):
        model = build_model(backbone, k, head="binary")
        for size in sizes:
            rep = reported("official_readme", dataset=dataset, backbone=label, input_size=size)
            rep = {r.metric: r.value for r in rep.itertuples()}
            rows.append({"network": f"{label}, {dataset} ({k} points), {size} px",
                         "params (M)": count_params(model) / 1e6, "params (M), reported": rep.get("Params"),
                         "FLOPs (G), thop-style": count_flops(model, size, count_batchnorm=True) / 1e9,
                         "FLOPs (G), reported": rep.get("FLOPs"),
                         "MACs (G), no BatchNorm": count_flops(model, size) / 1e9})
    return pd.DataFrame(rows).set_index("network")


def macs_by_stride(base: Config, strides=(1, 2, 4, 8, 16), keypoints: int = 98) -> pd.DataFrame:
    """MACs (G) of one forward pass of ``keypoints`` heatmaps at each heatmap stride, for the
    paper's two networks at 256 px and ``base``'s network (the cpu profile's) at 64 px. Columns
    ``network, stride, MACs (G)``."""
    from h3r.models import build_model, count_flops

    networks = [(backbone, f"{label}, 256 px", 256, None) for backbone, label in PAPER_NETWORKS]
    networks.append((base.backbone, f"{base.backbone} (the cpu profile's), 64 px", 64, base.head_width or None))
    rows = [{"network": label, "stride": stride,
             "MACs (G)": count_flops(build_model(backbone, keypoints, heatmap_stride=stride,
                                                 head_width=head_width), size) / 1e9}
            for backbone, label, size, head_width in networks for stride in strides]
    return pd.DataFrame(rows)


def network_speed(base: Config, device, steps: int, warmup: int, keypoints: int = 68) -> dict:
    """The training throughput of ``base``'s network alone (full training steps on random data at
    its input size and batch, ``steps`` timed after ``warmup``) on ``device``, in a fresh process
    (:func:`h3r.benchmarks.in_fresh_process`): ``{"results": [...], "provenance": {...}}``."""
    from h3r.benchmarks import in_fresh_process

    return in_fresh_process("training", backbone=base.backbone, width_mult=base.width_mult, input=base.input_size,
                            batch=base.batch_size, keypoints=keypoints, steps=steps, warmup=warmup, device=device,
                            threads=base.threads or 0)


def loop_speed(profile: str, max_steps: int, batch_size: int) -> dict:
    """The images/s of ``profile``'s training loop (``h3r.train`` on the embedded benchmark, at most
    ``max_steps`` steps of ``batch_size``) and its setup, in a fresh process."""
    from h3r.benchmarks import in_fresh_process

    return in_fresh_process("training", loop=profile, max_steps=max_steps, batch=batch_size)["results"][0]


def cross_resolution(runs: pd.DataFrame) -> pd.DataFrame:
    """H3R at each input size against vanilla (``argmax-round``) at the same and every larger
    size, paired by seed (the same seed draws the same faces and initialisation): per pair of
    sizes the paired NME difference (negative: H3R is better), its 95 % interval, the verdict on
    "H3R localises better" (:func:`h3r.stats.verdict`) and H3R's share of vanilla's MACs."""
    sizes = sorted(runs.input_size.unique())
    labelled = runs.assign(method=[f"{c}@{s}" for c, s in zip(runs.codec, runs.input_size)], pair="all")
    macs = runs.groupby(["codec", "input_size"]).GMACs.first()
    out = []
    for small, large in itertools.combinations_with_replacement(sizes, 2):
        treatment, control = f"h3r@{small}", f"argmax-round@{large}"
        if not {treatment, control} <= set(labelled.method):
            continue
        d = paired_differences(labelled, treatment, control, by="pair").iloc[0]
        out.append({"h3r input": small, "argmax-round input": large, "mean": d["mean"], "low": d["low"],
                    "high": d["high"], "n": d["n"], "treatment_mean": d.treatment_mean,
                    "control_mean": d.control_mean, "verdict": verdict(d["low"], d["high"]),
                    "MACs ratio": macs["h3r", small] / macs["argmax-round", large]})
    return pd.DataFrame(out)


# --- the mechanism: what the H3R networks predict around a keypoint --------------------------------

def predicted_logits(cfg: Config, samples: int | None = None):
    """The trained network of run ``cfg`` on its first ``samples`` test images: logits
    (N, K, Hh, Wh) (the foreground logits of a binary head), the keypoints (N, K, 2) in crop pixels
    and their visibility (N, K), and the run's codec."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from h3r.evaluation import decodable
    from h3r.train import build_data

    model, codec = load_run(cfg)
    dataset = build_data(cfg, cfg.test_split, train=False)
    if samples is not None:
        dataset = Subset(dataset, range(min(samples, len(dataset))))
    logits, keypoints, visible = [], [], []
    with torch.inference_mode():
        for batch in DataLoader(dataset, batch_size=cfg.batch_size):
            logits.append(decodable(model(batch["image"]), model.head_kind, cfg.score_mode))
            keypoints.append(batch["keypoints"])
            visible.append(batch["visible"] > 0)
    return torch.cat(logits), torch.cat(keypoints), torch.cat(visible), codec


def mechanism(rows: pd.DataFrame, samples: int | None = None) -> pd.DataFrame:
    """For every trained H3R run among ``rows`` (one-hot randomized targets), how close the
    network's spatial softmax comes to the expected target around each test keypoint
    (:func:`h3r.analysis.neighbour_weights`): per run, the mean share of the mass on the 4
    rounding neighbours (``mass``), the mean absolute difference between the renormalised
    predicted weights and the bilinear ones (``error``), and that difference for a prediction that
    split the mass evenly (``uniform``), the baseline of a network that learned nothing sub-cell."""
    from h3r.analysis import neighbour_weights

    out = []
    for row in rows[(rows.method == "h3r") & ~rows.get("decoder_only", False)].itertuples():
        logits, keypoints, visible, codec = predicted_logits(row.config, samples)
        w = neighbour_weights(logits, keypoints, codec, visible)
        ok = w["valid"]
        out.append({"heatmap_stride": row.heatmap_stride, "seed": row.seed, "keypoints": int(ok.sum()),
                    "mass": w["mass"][ok].mean().item(), "error": w["error"][ok].mean().item(),
                    "uniform": (0.25 - w["bilinear"][ok]).abs().mean().item()})
    return pd.DataFrame(out)


def topk_nme(runs: pd.DataFrame, ks=(1, 9)) -> dict[str, float]:
    """The mean NME (%) over the trained H3R runs ``runs`` decoded (:func:`h3r.runs.reevaluate`)
    from the top ``k`` cells, for each of ``ks``: ``{"top-<k>": NME}``."""
    from h3r.runs import reevaluate

    return {f"top-{k}": sum(reevaluate(c, "h3r", select="topk", k=k)["summary"]["all"]["NME (%)"]
                            for c in runs.config) / len(runs) for k in ks}


def activation_points(runs: pd.DataFrame, ks, windows, input_size: int) -> pd.DataFrame:
    """Every trained H3R run of ``runs`` decoded again from ``k`` activation points: the top ``k``
    cells for each of ``ks``, and the ``(2r+1)^2`` window around the maximum for each radius of
    ``windows``; never from more points than the run's heatmap has cells. Columns ``stride, seed,
    points`` (the decoding's label), ``n_points, nme``."""
    decoders = [(f"top-{k}", k, dict(select="topk", k=k)) for k in ks]
    decoders += [(f"window {2 * r + 1}x{2 * r + 1}", (2 * r + 1) ** 2, dict(select="window", radius=r))
                 for r in windows]
    rows = []
    for run in runs.itertuples():
        cells = (input_size // run.heatmap_stride) ** 2
        fitting = [d for d in decoders if d[1] <= cells]  # 25 points do not fit a 4x4 map
        evaluations = reevaluate_decoders(run.config, [("h3r", options) for _, _, options in fitting])
        rows += [dict(stride=run.heatmap_stride, seed=run.seed, points=label, n_points=n_points,
                      nme=evaluation["summary"]["all"]["NME (%)"])
                 for (label, n_points, _), evaluation in zip(fitting, evaluations)]
    return pd.DataFrame(rows)


def target_variants(sigma: float) -> dict[str, dict]:
    """Chapter 6's targets for H3R's loss, spatial-softmax CE (label -> the config fields each
    changes): the paper's one-hot draw, a Gaussian of ``sigma`` cells on the draw, and the
    bilinear expected target with no draw."""
    return {"one-hot draw (the paper)": dict(codec="h3r"),
            f"Gaussian (sigma {sigma}) on the draw": dict(codec="h3r",
                                                          codec_args={"target": "gaussian", "sigma": sigma}),
            "bilinear expected target, no draw": dict(codec="h3r", codec_args={"target": "bilinear"})}


def head_variants(cells: int, lr: float) -> dict[str, dict]:
    """Chapter 6's losses for the official two-channel head (label -> the config fields each
    changes) on a heatmap of ``cells`` cells, with ``lr`` the base learning rate: binary CE without
    the prior, with ``pos_weight`` H·W, focal, on soft targets, at 3x the rate; with the default
    prior ``-log(H·W)``; and the foreground CE."""
    no_prior = {"prior": 0.0}
    return {"binary CE": dict(loss="binary_ce", loss_args=no_prior),
            f"binary CE, pos_weight = {cells} (H·W)": dict(loss="binary_ce",
                                                           loss_args={**no_prior, "pos_weight": float(cells)}),
            "binary CE, focal (gamma 2)": dict(loss="binary_ce", loss_args={**no_prior, "gamma": 2.0}),
            "binary CE, soft (expected) targets": dict(loss="binary_ce", loss_args=no_prior,
                                                       codec_args={"target": "bilinear"}),
            "binary CE, 3x the learning rate": dict(loss="binary_ce", loss_args=no_prior, lr=3 * lr),
            f"binary CE, prior -log({cells}) (the default)": dict(loss="binary_ce"),
            "foreground CE (spatial CE on the foreground logits)": dict(loss="foreground_ce")}


def head_decodings(runs: pd.DataFrame) -> pd.DataFrame:
    """The two-channel head runs ``runs`` (:func:`h3r.runs.run_variants`) decoded two ways: from
    the foreground logits (the official decoder, their own NME) and from the log-odds
    (foreground minus background, :func:`h3r.runs.reevaluate`). Columns ``variant, seed,
    foreground (official), commit, log-odds``."""
    from h3r.runs import reevaluate

    head = runs[["variant", "seed", "NME (%)", "commit"]].rename(columns={"NME (%)": "foreground (official)"})
    return head.assign(**{"log-odds": [reevaluate(c, score_mode="log_odds")["summary"]["all"]["NME (%)"]
                                       for c in runs.config]})


# --- the other answers: coordinate classification, integral and likelihood regression ---------------

#: chapter 13's heatmap methods, trained by chapter 5 and read back: vanilla, H3R, and a Gaussian on
#: the exact point (the target a local soft-argmax reads)
ANSWER_HEATMAPS = ("argmax-round", "h3r", "dark")
#: decoder-only rows: the local soft-argmax of Bulat et al. reads the exact-Gaussian networks
ANSWER_DECODERS = (("local-soft-argmax", "dark"),)
#: the SimCC pair trained with bins as wide as each heatmap stride (split ratio 1/s): one-hot labels
#: on the rounded bin, and on a randomized-rounding draw (the paper's idea on 1-D bins)
SIMCC_PAIR = ("simcc-round", "simcc-random")
#: methods trained once, at their own resolution: SimCC's default (2 bins per pixel, Gaussian
#: labels), soft-argmax over the stride-4 map (integral regression) and DSNT, trained on the
#: coordinates, and RLE, which regresses them from pooled features
ANSWER_FIXED = ("simcc", "soft-argmax", "dsnt", "rle")
#: how :func:`versus_nearest_cost`'s verdicts read for H3R (the claim: H3R's error is lower)
H3R_READS = {"supported": "H3R better", "contradicted": "H3R worse", "not shown": "within noise",
             "degenerate": "degenerate"}


def resolution_of(cfg: Config) -> float:
    """Input pixels per cell of what a method's network outputs: the heatmap stride, a SimCC bin's
    width (1 / split ratio), or NaN for the resolution-free methods (RLE; soft-argmax and DSNT,
    which read a whole map as one distribution)."""
    from h3r.codecs import build_codec

    kind = preset(cfg.codec)
    if kind.head == "simcc":
        return 1 / build_codec(cfg.codec, cfg.input_size, **cfg.codec_args).split_ratio
    if kind.head == "regression" or kind.loss in ("l1_coords", "dsnt"):
        return float("nan")
    return float(cfg.heatmap_stride)


def backbone_macs(cfg: Config) -> int:
    """MACs of ``cfg``'s backbone alone on one image (:func:`h3r.models.count_flops`): what every
    method shares; a run's ``macs`` minus this are its head's."""
    from h3r.models import count_flops
    from h3r.models.backbones import build_backbone

    return count_flops(build_backbone(cfg.backbone, cfg.width_mult), cfg.input_size)


def answers_study(base: Config, strides, seeds, sigma: float | None = None, force: bool = False) -> pd.DataFrame:
    """Every method of chapter 13 on one resolution axis, every seed of ``seeds``: the heatmap
    methods of :data:`ANSWER_HEATMAPS` at each stride of ``strides`` (chapter 5's runs, read back),
    the decoder-only rows of :data:`ANSWER_DECODERS`, :data:`SIMCC_PAIR` with bins ``s`` pixels wide
    for each stride ``s``, and :data:`ANSWER_FIXED` once (heatmap stride ``base``'s). One row per
    run (or decoder-only row) with ``method``, ``decoder_only``, ``resolution`` (input pixels per
    cell or bin, :func:`resolution_of`; NaN: resolution-free) and ``head MACs`` (the run's MACs
    minus the backbone's)."""
    heat = resolution_study(base, strides, seeds, ANSWER_HEATMAPS, sigma=sigma, force=force)
    heat = heat[~heat.decoder_only]
    configs = [dataclasses.replace(base, codec=codec, codec_args={"split_ratio": 1 / stride}, seed=seed)
               for codec in SIMCC_PAIR for stride in strides for seed in seeds]
    configs += [dataclasses.replace(base, codec=codec, codec_args=preset_args(codec, sigma), seed=seed)
                for codec in ANSWER_FIXED for seed in seeds]
    others = run_grid(configs, force=force).assign(method=lambda r: r.codec, decoder_only=False)
    rows = pd.concat([heat, decoder_only_rows(heat, ANSWER_DECODERS, sigma), others], ignore_index=True)
    shared = backbone_macs(base)
    return rows.assign(resolution=[resolution_of(c) for c in rows.config], **{"head MACs": rows.macs - shared})


def answers_runs(profile: str, force: bool = False, **overrides) -> pd.DataFrame:
    """Chapter 13's runs as every chapter reads them: :func:`answers_study` with the settings of
    chapter ``other_answers`` under ``profile`` (with ``overrides``, as :func:`resolution_runs`)."""
    cfg = chapter("other_answers", profile, **overrides)
    return answers_study(cfg.base, cfg.strides, cfg.seeds, sigma=cfg.sigma, force=force)


def answers_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per method and resolution of :func:`answers_study`'s rows: ``NME`` (mean over
    seeds), ``sd``, ``params``, ``MACs`` and ``head MACs`` (per image), ``config`` (one
    run's) and ``pareto`` (:func:`h3r.stats.pareto_front` over head MACs and NME)."""
    from h3r.stats import MACHINE_SPREAD, pareto_front

    keys = ["method", "resolution"]
    summary = (rows.groupby(keys, dropna=False, sort=False)
               .agg(NME=("NME (%)", "mean"), sd=("NME (%)", "std"),
                    params=("params", "first"), MACs=("macs", "first"), config=("config", "first"),
                    **{"head MACs": ("head MACs", "first")})
               .reset_index())
    return summary.assign(pareto=pareto_front(summary["head MACs"], summary.NME, MACHINE_SPREAD))


def _cells(rows: pd.DataFrame, method: str, resolution: float) -> pd.DataFrame:
    """The rows of ``method`` at ``resolution`` (NaN matches NaN)."""
    at = rows.resolution.isna() if resolution != resolution else rows.resolution == resolution
    return rows[(rows.method == method) & at]


def simcc_rounding_differences(rows: pd.DataFrame) -> pd.DataFrame:
    """``simcc-random - simcc-round`` NME, paired by seed, per bin width (``resolution``), with
    :func:`h3r.stats.verdict` on the claim that randomized rounding lowers the error."""
    pair = rows[rows.method.isin(SIMCC_PAIR)]
    if set(pair.method) != set(SIMCC_PAIR):
        return pd.DataFrame()
    diff = paired_differences(pair, SIMCC_PAIR[1], SIMCC_PAIR[0], by="resolution")
    return diff.assign(verdict=[verdict(lo, hi) for lo, hi in zip(diff.low, diff.high)])


def versus_nearest_cost(rows: pd.DataFrame, degenerate: pd.DataFrame | None = None,
                        reference: str = "h3r") -> pd.DataFrame:
    """``reference`` (H3R) minus every other method at every resolution, paired by seed, each
    against H3R at the stride whose head MACs are nearest (on a log scale) to that method's.
    Columns ``method, resolution, h3r stride, head MACs, h3r head MACs, mean, low, high, n,
    verdict`` (on the claim that H3R's error is lower; ``"degenerate"`` where either cell is,
    ``degenerate``: :func:`degenerate_cells`), ``reads`` (:data:`H3R_READS`) and ``reason``."""
    import math

    reasons = degenerate_reasons(degenerate)
    summary = answers_summary(rows)
    ours = summary[summary.method == reference].set_index("resolution")["head MACs"]
    out = []
    for r in summary[summary.method != reference].to_dict("records"):
        macs = r["head MACs"]
        nearest = min(ours.index, key=lambda s: abs(math.log(max(ours[s], 1) / max(macs, 1))))
        pair = pd.concat([_cells(rows, reference, nearest), _cells(rows, r["method"], r["resolution"])])
        d = paired_differences(pair.assign(cell=0), reference, r["method"], by="cell").iloc[0]
        why = reasons.get((r["method"], r["resolution"])) or reasons.get((reference, nearest), "")
        judged = "degenerate" if why else verdict(d.low, d.high)
        out.append({"method": r["method"], "resolution": r["resolution"], "h3r stride": nearest, "head MACs": macs,
                    "h3r head MACs": ours[nearest], "mean": d["mean"], "low": d.low, "high": d.high, "n": d.n,
                    "treatment_mean": d.treatment_mean, "control_mean": d.control_mean, "verdict": judged,
                    "reads": H3R_READS[judged], "reason": why})
    return pd.DataFrame(out)


def decode_microseconds(cfg: Config, method: str | None = None, batch: int = 64, sigma: float | None = None,
                        min_seconds: float = 0.2) -> float:
    """Microseconds per image to decode what ``cfg``'s network outputs (its head on a batch of
    ``batch`` random images; an untrained network has the shapes) with ``method``'s decoder (the
    run's codec, or ``X`` of a decoder-only ``"X on <codec>"``, with the study's ``sigma``): the
    median of :class:`torch.utils.benchmark.Timer` over at least ``min_seconds``, one thread."""
    import logging

    import torch

    from h3r.train import build_run

    # torch.utils.benchmark imports torch.utils.cpp_extension, which warns at import on a machine
    # without CUDA; nothing here compiles, and a page should not show the warning
    extension_log = logging.getLogger("torch.utils.cpp_extension")
    level = extension_log.level
    extension_log.setLevel(logging.ERROR)
    try:
        from torch.utils.benchmark import Timer
    finally:
        extension_log.setLevel(level)

    decoder = decoder_of(method or cfg.codec)
    if decoder != cfg.codec:
        cfg = dataclasses.replace(cfg, codec=decoder, codec_args=preset_args(decoder, sigma))
    model, codec = build_run(dataclasses.replace(cfg, device="cpu"))
    with torch.no_grad():
        w, h = (cfg.input_size,) * 2 if isinstance(cfg.input_size, int) else cfg.input_size
        output = model.eval()(torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(0)))
    timer = Timer("codec.decode(output)", globals={"codec": codec, "output": output}, num_threads=1)
    return timer.blocked_autorange(min_run_time=min_seconds).median / batch * 1e6


# --- findings at a glance ----------------------------------------------------------------------------

def theory_checks(input_size: int = 256, stride: int = 4, points: int = 256, draws: int = 1024,
                  seed: int = 0) -> dict:
    """The three theory claims measured on random keypoints with the library's codecs:
    ``floor_over_round`` and ``round_per_stride`` (vanilla's mean 2-D error, which the closed form
    puts at 2 and ``h3r.analysis.CORNER_MEAN / 2``), the RMS error of the mean of ``draws``
    randomized decodes and its sampling-noise prediction (unbiased), and the largest error of
    decoding the expected target (lossless)."""
    import math

    import torch

    from h3r import analysis
    from h3r.codecs import build_codec

    g = torch.Generator().manual_seed(seed)
    kp = analysis.uniform_keypoints(points, input_size, stride, g, margin=2)
    error = {q: e.norm(dim=-1).mean().item() for q, e in analysis.vanilla_errors(kp, input_size, stride).items()}
    h3r = build_codec("h3r", input_size, stride=stride, weighting="normalized", k=4)
    mean_error = analysis.mean_decode_convergence(h3r, kp, [draws], g).rms_error.item()
    noise = analysis.sampling_noise(h3r, kp) / math.sqrt(draws)
    lossless = analysis.round_trip_errors(h3r, kp, "expected").norm(dim=-1).max().item()
    return {"floor_over_round": error["floor"] / error["round"], "round_per_stride": error["round"] / stride,
            "mean_error": mean_error, "noise": noise, "lossless": lossless, "stride": stride, "draws": draws}


def official_cost_check() -> tuple[int, int]:
    """How many rows of the official README's parameter and FLOP counts h3r's networks (with the
    official head) reproduce to the README's two decimals, of how many: ``(matching, rows)``."""
    from h3r.models import build_model, count_flops, count_params
    from h3r.reported import reported
    from h3r.zoo import README_BACKBONES, README_DATASETS

    readme = reported("official_readme").pivot_table(index=["dataset", "backbone", "bbox", "input_size"],
                                                      columns="metric", values="value").reset_index()
    models, matching = {}, 0
    for r in readme.itertuples():
        from h3r.data.registry import dataset_class

        arch, k = README_BACKBONES[r.backbone][0], dataset_class(README_DATASETS[r.dataset][0]).layout.num_keypoints
        model = models.setdefault((arch, k), build_model(arch, k, head="binary"))
        params = round(count_params(model) / 1e6, 2)
        flops = round(count_flops(model, int(r.input_size), count_batchnorm=True) / 1e9, 2)
        matching += params == r.Params and flops == r.FLOPs
    return matching, len(readme)
