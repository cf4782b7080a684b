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
import json

import pandas as pd

from h3r.experiments import METRICS, grid, mean_spread, paired_differences, run_grid
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


def study_codecs(as_published: bool = True) -> list[str]:
    """Every codec the resolution study trains: the families' and, optionally, the published ones."""
    codecs = [c for family in FAMILIES.values() for c in family.values()]
    return list(dict.fromkeys(codecs + (list(AS_PUBLISHED) if as_published else [])))


def family_of(codec: str) -> list[tuple[str, str]]:
    """The (family, rounding) pairs a codec belongs to."""
    return [(family, rounding) for family, members in FAMILIES.items() for rounding, c in members.items()
            if c == codec]


def resolution_study(base: Config, strides, seeds, codecs=None, force: bool = False) -> pd.DataFrame:
    """Train (or read back) every codec at every stride and seed; one row per run, with the
    decoder-only variants of :data:`DECODER_ONLY` added as rows of their own (``method`` is the
    codec, or ``"<decoder> on <trained codec>"``; ``decoder_only`` says which)."""
    from h3r.runs import reevaluate

    codecs = study_codecs() if codecs is None else list(codecs)
    runs = run_grid(grid(base, codec=codecs, heatmap_stride=list(strides), seed=list(seeds)), force=force)
    runs["method"], runs["decoder_only"] = runs.codec, False
    extra = []
    for decoder, trained in DECODER_ONLY:
        for row in runs[runs.codec == trained].itertuples():
            summary = reevaluate(row.config, decoder)["summary"]["all"]
            extra.append({**row._asdict(), "method": f"{decoder} on {trained}", "decoder_only": True,
                          **{m: summary[m] for m in METRICS}})
    rows = pd.concat([runs, pd.DataFrame(extra)], ignore_index=True) if extra else runs
    return rows.drop(columns=["Index"], errors="ignore")


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


def floors(base: Config, strides, codecs, decoder_only=DECODER_ONLY, seed: int = 0) -> pd.DataFrame:
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
    table = codec_nme_table([landmark_set(dataset)], list(strides), trips, flip_test=base.flip_test, seed=seed)
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
    return pd.DataFrame(out)


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
