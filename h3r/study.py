"""The study's design: which runs answer which claim, and the numbers the book reads off them.

The paper's central claim is about *rounding*: randomized rounding keeps the fractional part of a
keypoint in the expected target, so a coarse heatmap localises about as well as a fine one, while
deterministic rounding loses it. A comparison tests that claim only where nothing but the rounding
differs. :data:`FAMILIES` holds the matched controls: within a family the network, the data, the
seed, the schedule, the target's shape and the loss are the same, and only the encoder's rounding
differs (each with the decoder that can read its target). :data:`AS_PUBLISHED` holds the presets as
their papers publish them, each with its own target and loss, for reference.

Every learned number has a floor beside it: the codec-only NME of its codec on the same test faces
at the same heatmap size (:func:`floors`, :mod:`h3r.analysis`), the error a network that
reproduced its training target perfectly would make.
"""
from __future__ import annotations

import dataclasses
import itertools
import json

import pandas as pd

from h3r.experiments import METRICS, mean_spread, paired_differences, run_grid
from h3r.train import Config

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

#: what each codec's floor decodes (h3r.analysis.RoundTrip): randomized codecs their expected target
FLOOR_TARGET = {"h3r": "expected", "gauss-random": "expected"}


def codec_args(codec: str, sigma: float | None) -> dict:
    """The study's overrides of a preset: the Gaussian's ``sigma`` (cells) for the codecs whose
    target or decoder is a Gaussian (``{}`` for the others, or when ``sigma`` is None: the preset's)."""
    from h3r.codecs import DARK, PRESETS, ArgmaxQuarter

    cls, kwargs = PRESETS[codec]
    gaussian = issubclass(cls, (DARK, ArgmaxQuarter)) or kwargs.get("target") == "gaussian"
    return {"sigma": sigma} if gaussian and sigma is not None else {}


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
    from h3r.runs import reevaluate_decoders

    codecs = study_codecs() if codecs is None else list(codecs)

    def axes(codec: str) -> tuple[list, list]:
        if family_of(codec):
            return list(strides), list(seeds)
        return ([s for s in strides if published_strides is None or s in published_strides],
                list(seeds if published_seeds is None else published_seeds))

    configs = [dataclasses.replace(base, codec=codec, codec_args=codec_args(codec, sigma), heatmap_stride=stride,
                                   seed=seed)
               for codec in codecs for stride, seed in itertools.product(*axes(codec))]
    runs = run_grid(configs, force=force)
    runs["method"], runs["decoder_only"] = runs.codec, False
    extra = []
    for trained in dict.fromkeys(trained for _, trained in DECODER_ONLY):
        decoders = [decoder for decoder, of in DECODER_ONLY if of == trained]
        for row in runs[runs.codec == trained].to_dict("records"):
            evaluations = reevaluate_decoders(row["config"], [(d, codec_args(d, sigma)) for d in decoders])
            extra += [{**row, "method": f"{decoder} on {trained}", "decoder_only": True,
                       **{m: evaluation["summary"]["all"][m] for m in METRICS}}
                      for decoder, evaluation in zip(decoders, evaluations)]
    return pd.concat([runs, pd.DataFrame(extra)], ignore_index=True) if extra else runs


def matched_differences(rows: pd.DataFrame, value: str = "NME (%)") -> pd.DataFrame:
    """Per family and stride, the paired per-seed difference of every rounding against the
    family's deterministic rounding (the control), with its 95 % interval
    (:func:`h3r.experiments.paired_differences`). Negative: the treatment has the lower error."""
    trained = rows[~rows.decoder_only]
    out = []
    for family, members in FAMILIES.items():
        control = members["deterministic"]
        for rounding, codec in members.items():
            if rounding == "deterministic" or codec not in set(trained.method):
                continue
            diff = paired_differences(trained, codec, control, value=value)
            out.append(diff.assign(family=family, rounding=rounding))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def floors(base: Config, strides, codecs, sigma: float | None = None, decoder_only=DECODER_ONLY,
           seed: int = 0) -> pd.DataFrame:
    """The codec-only NME (%) of each method on the test faces ``base`` is evaluated on, at each
    stride: each codec's target (the expected target for randomized codecs) decoded by its own
    decoder, and for a decoder-only method ``"<decoder> on <codec>"`` (of those whose codec is
    among ``codecs``) that target read by the other decoder; through the same crop, flip test and
    normaliser as the learned runs, with no network. Columns ``method, heatmap_stride, floor``."""
    from h3r.analysis import RoundTrip, codec_nme_table, landmark_set
    from h3r.train import build_data

    dataset = build_data(base, base.test_split, train=False)
    if getattr(dataset, "transform", None) is not None:
        dataset.transform.augment = None
    trips = {codec: RoundTrip(codec, FLOOR_TARGET.get(codec, "encode")) for codec in codecs}
    trips.update({f"{decoder} on {codec}": RoundTrip(codec, FLOOR_TARGET.get(codec, "encode"), decoder)
                  for decoder, codec in decoder_only if codec in codecs})
    table = codec_nme_table([landmark_set(dataset)], list(strides), trips, flip_test=base.flip_test, seed=seed,
                            codec_args=lambda name: codec_args(name, sigma))
    table = table.rename(columns={"codec": "method", "stride": "heatmap_stride", "nme": "floor"})
    return table[["method", "heatmap_stride", "floor"]]


def with_floors(rows: pd.DataFrame, floor: pd.DataFrame, value: str = "NME (%)") -> pd.DataFrame:
    """``method x stride`` table of the learned ``value`` (mean ± s.d. over seeds) beside each
    method's floor (:func:`floors`)."""
    learned = mean_spread(rows, "method", "heatmap_stride", value=value)
    floors_ = floor.pivot(index="method", columns="heatmap_stride", values="floor").reindex(learned.index)
    table = {}
    for stride in learned.columns:
        table[(f"stride {stride}", "learned")] = learned[stride]
        table[(f"stride {stride}", "floor")] = floors_[stride].round(2)
    return pd.DataFrame(table, index=learned.index)


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


def configs_of(rows: pd.DataFrame, **where) -> list[Config]:
    """The configs of the trained runs among ``rows`` whose columns equal ``where``."""
    keep = ~rows.get("decoder_only", pd.Series(False, index=rows.index))
    for column, value in where.items():
        keep &= rows[column] == value
    return [dataclasses.replace(c) for c in rows[keep].config]


# --- the mechanism: what the H3R networks predict around a keypoint --------------------------------

def predicted_logits(cfg: Config, samples: int | None = None):
    """The trained network of run ``cfg`` on its first ``samples`` test images: logits
    (N, K, Hh, Wh) (the foreground logits of a binary head), the keypoints (N, K, 2) in crop pixels
    and their visibility (N, K), and the run's codec."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from h3r.evaluation import decodable
    from h3r.runs import load_run
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


# --- findings at a glance ----------------------------------------------------------------------------

#: what bounds every learned finding of the default build
CAVEATS = ("no GPU run: a small CPU network at 64 px; synthetic faces, not real images; the paper's own "
           "tables could not be read, so no paper number stands beside these")


def theory_checks(input_size: int = 256, stride: int = 4, points: int = 256, draws: int = 1024,
                  seed: int = 0) -> dict:
    """The three theory claims measured on random keypoints with the library's codecs:
    ``floor_over_round`` and ``round_per_stride`` (vanilla's mean 2-D error, which the closed form
    puts at 2 and 0.383), the RMS error of the mean of ``draws`` randomized decodes and its
    sampling-noise prediction (unbiased), and the largest error of decoding the expected target
    (lossless)."""
    import math

    import torch

    from h3r.analysis import round_trip
    from h3r.codecs import build_codec

    g = torch.Generator().manual_seed(seed)
    low, high = 2 * stride, input_size - 1 - 3 * stride
    kp = low + (high - low) * torch.rand(points, 1, 2, generator=g)
    error = {q: (round_trip(build_codec(f"argmax-{q}", input_size, stride=stride, target="onehot"), kp)[0]
                 - kp.double()).norm(dim=-1).mean().item() for q in ("floor", "round")}
    h3r = build_codec("h3r", input_size, stride=stride, weighting="normalized", k=4)
    total = torch.zeros_like(kp, dtype=torch.float64)
    for _ in range(draws):
        total += round_trip(h3r, kp, generator=g)[0]
    mean_error = (total / draws - kp.double()).norm(dim=-1).pow(2).mean().sqrt().item()
    frac = h3r.to_heatmap(kp) % 1
    noise = stride * math.sqrt((frac * (1 - frac)).sum(-1).mean().item() / draws)
    lossless = (round_trip(h3r, kp, target="expected")[0] - kp.double()).norm(dim=-1).max().item()
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


def stride_verdicts(verdicts: dict) -> str:
    """One phrase for the :func:`h3r.experiments.verdict` of each stride (stride -> verdict):
    ``"supported at every stride"``, or which strides support, contradict, or are within noise."""
    if set(verdicts.values()) == {"supported"}:
        return "supported at every stride"
    said = {"supported": "supported", "contradicted": "contradicted", "not shown": "within noise"}
    parts = [f"{said[v]} at stride{'s' if len(strides) > 1 else ''} {', '.join(map(str, strides))}"
             for v in said if (strides := [s for s, x in verdicts.items() if x == v])]
    return "; ".join(parts)


def findings(rows: pd.DataFrame, mechanism_rows: pd.DataFrame | None, activation: dict | None,
             theory: dict, official_costs: tuple[int, int] | None = None) -> pd.DataFrame:
    """The findings table: per claim of the paper, the chapter holding the evidence, the key
    numbers of this build, a verdict (supported, not supported, or not tested here) and the
    caveats. ``rows``: :func:`resolution_study`; ``mechanism_rows``: :func:`mechanism`;
    ``activation``: the NME of the H3R networks decoded from the top 1 and the top 9 cells."""
    from h3r.experiments import verdict

    trained = rows[~rows.decoder_only]
    strides = sorted(trained.heatmap_stride.unique())
    diffs = matched_differences(rows)
    out = []

    def add(claim, chapter, numbers, result, caveats=""):
        out.append({"claim": claim, "evidence": chapter, "key numbers": numbers, "verdict": result,
                    "caveats": caveats})

    add("Vanilla heatmap regression's quantization error grows linearly with the stride (floor: twice "
        "round's)", "[1](01_quantization_error.ipynb)",
        f"mean 2-D error of round / stride {theory['round_per_stride']:.3f} (closed form 0.383); floor / round "
        f"{theory['floor_over_round']:.2f} (2)",
        "supported" if abs(theory["round_per_stride"] - 0.383) < 0.02 and abs(theory["floor_over_round"] - 2) < 0.1
        else "not supported", "Monte Carlo with the library's codecs; no network")
    add("Randomized rounding is unbiased", "[2](02_unbiasedness.ipynb)",
        f"RMS error of the mean of {theory['draws']} decodes {theory['mean_error']:.4f} px, sampling noise "
        f"{theory['noise']:.4f} px (stride {theory['stride']})",
        "supported" if theory["mean_error"] < 2 * theory["noise"] else "not supported",
        "Monte Carlo; no network")
    add("Decoding the expected target is lossless", "[2](02_unbiasedness.ipynb)",
        f"largest error {theory['lossless']:.1e} px (top-4, normalised weights)",
        "supported" if theory["lossless"] < 1e-3 else "not supported", "no network")
    for family, members in FAMILIES.items():
        d = diffs[(diffs.family == family) & (diffs.rounding == "randomized")]
        if d.empty:
            continue
        verdicts = {s: verdict(lo, hi) for s, lo, hi in zip(d.heatmap_stride, d.low, d.high)}
        numbers = "; ".join(f"stride {s}: {m:+.2f} [{lo:+.2f}, {hi:+.2f}]"
                            for s, m, lo, hi in zip(d.heatmap_stride, d["mean"], d.low, d.high))
        result = stride_verdicts(verdicts)
        add(f"With everything else equal, randomized rounding localises better than deterministic rounding "
            f"({family})", "[5](05_heatmap_resolution.ipynb)",
            f"paired NME difference, randomized minus deterministic, mean [95 % interval] over seeds: {numbers}",
            result, CAVEATS)

    def growth(method):
        by = trained[trained.method == method].groupby("heatmap_stride")["NME (%)"].mean()
        return by.get(strides[-1], float("nan")) - by.get(strides[0], float("nan"))

    if {"h3r", "onehot-round"} <= set(trained.method) and len(strides) > 1:
        h, v = growth("h3r"), growth("onehot-round")
        add(f"H3R's error stays nearly flat from fine to coarse heatmaps while vanilla's grows (strides "
            f"{strides[0]} to {strides[-1]})", "[5](05_heatmap_resolution.ipynb)",
            f"growth of the NME: h3r {h:+.2f} points, onehot-round {v:+.2f}, argmax-round "
            f"{growth('argmax-round'):+.2f}",
            "supported" if h < 0.5 * v else "not supported", CAVEATS)
    if activation:
        add("The decoder needs several activation points: the argmax alone loses the fraction",
            "[6](06_ablations.ipynb)",
            f"H3R NME at stride 4: top-1 {activation['top-1']:.2f} %, top-9 {activation['top-9']:.2f} %",
            "supported" if activation["top-1"] > activation["top-9"] else "not supported", CAVEATS)
    if mechanism_rows is not None and len(mechanism_rows):
        m = mechanism_rows.groupby("heatmap_stride")[["mass", "error", "uniform"]].mean()
        numbers = "; ".join(f"stride {s}: mass {r.mass:.2f}, mean absolute error to bilinear {r.error:.3f} "
                            f"(even split {r.uniform:.3f})" for s, r in m.iterrows())
        add("(beyond the paper) The network learns the expected target, the bilinear weights of the 4 neighbours",
            "[6](06_ablations.ipynb)", numbers,
            "supported" if (m.error < m.uniform).all() else "not supported", CAVEATS)
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
