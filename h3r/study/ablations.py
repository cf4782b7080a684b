"""Chapter 6, ablations and the mechanism: how many activation points the decoder reads, the target's
shape, the official two-channel head and its losses, and whether a network trained on randomized
one-hot targets learns their expectation (the bilinear weights of the 4 neighbours).
"""
from __future__ import annotations

import pandas as pd

from h3r.config import Config
from h3r.runs import load_run, reevaluate_decoders
from h3r.stats import MECHANISM_RULE, apart, lowest_text, mean_spread, mechanism_verdict, stride_verdicts

# --- the design and its numbers ------------------------------------------------------------


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
    return {"one-hot draw (the paper)": dict(preset="h3r"),
            f"Gaussian (sigma {sigma}) on the draw": dict(preset="h3r",
                                                          codec_args={"target": "gaussian", "sigma": sigma}),
            "bilinear expected target, no draw": dict(preset="h3r", codec_args={"target": "bilinear"})}


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


# --- its tables and sentences ------------------------------------------------------------


def mechanism_table(learned: pd.DataFrame) -> pd.DataFrame:
    """:func:`h3r.study.ablations.mechanism`'s rows as a table by stride: the mass on the 4 neighbours, the
    error to the bilinear weights and the uniform baseline, each ``mean ± s.d.`` over seeds to 3
    decimals (:func:`h3r.stats.mean_spread`: one seed shows its value alone)."""
    return pd.concat([mean_spread(learned, "heatmap_stride", value=v, digits=3) for v in ("mass", "error", "uniform")],
                     axis=1)


def activation_table(activation: pd.DataFrame) -> pd.DataFrame:
    """:func:`h3r.study.ablations.activation_points` as a ``points x "stride <s>"`` table of NME mean ± s.d.
    over seeds; "—" where the heatmap has fewer cells than the decoding's points."""
    table = mean_spread(activation, "points", "stride", value="nme")
    table.columns = [f"stride {s}" for s in table.columns]
    return table.fillna("—")


def head_table(head: pd.DataFrame) -> pd.DataFrame:
    """:func:`h3r.study.ablations.head_decodings` as a table by variant (in their order): mean and s.d.
    over seeds of the NME with the official decoder and with the log-odds."""
    return head.groupby("variant", sort=False)[["foreground (official)", "log-odds"]].agg(["mean", "std"])


def official_head_line(head: pd.DataFrame, trains_with: str) -> str:
    """Which loss of :func:`h3r.study.ablations.head_decodings`'s ``head`` gives the two-channel head the
    lowest error with the official decoder (mean over seeds), against the plain binary CE, and
    what ``h3r-official`` trains with (``trains_with``: its preset's loss)."""
    official = head.groupby("variant", sort=False)["foreground (official)"].mean()
    lowest = lowest_text(official, name="**{}**")
    return (f"The lowest error with the official decoder (top-9 foreground logits): {lowest} NME, "
            f"against {official['binary CE']:.2f} % for the plain binary "
            f"cross-entropy. The two-channel head (`h3r-official`, and `loss='binary_ce'`) trains with "
            f"`{trains_with}` and its default prior, the variant marked *the default*.")


def ablations_answer(activation: pd.DataFrame, target_rows: pd.DataFrame, head: pd.DataFrame,
                     learned: pd.DataFrame, stride: int) -> str:
    """Chapter 6's answer in three Markdown lines and its rule: top-1 against top-9 decoding at
    ``stride`` (``activation``: :func:`activation_points`), the lowest-error target and head loss
    (``target_rows``: :func:`h3r.runs.run_variants`; ``head``: :func:`head_decodings`), and whether
    the network learns the expected target (``learned``: :func:`mechanism`, by
    :data:`h3r.stats.MECHANISM_RULE`, stated below the lines)."""
    at = activation[activation.stride == stride].groupby("points").nme.mean()
    gain = at["top-1"] > at["top-9"] and apart(at["top-1"], at["top-9"])
    targets = target_rows.groupby("variant", sort=False)["NME (%)"].mean()
    official = head.groupby("variant", sort=False)["foreground (official)"].mean()
    m = learned.groupby("heatmap_stride")[["mass", "error", "uniform"]].mean()
    grades = stride_verdicts({s: mechanism_verdict(r.mass, r.error, r.uniform) for s, r in m.iterrows()})
    return (f"* **Does the decoder need several activation points?** {'Yes' if gain else 'Not here'}: top-9 "
            f"{at['top-9']:.2f} % NME against top-1 {at['top-1']:.2f} % (stride {stride}).\n"
            f"* **Which target, which head loss?** The lowest error: target {lowest_text(targets)}; two-channel "
            f"head {lowest_text(official)} (plain binary CE {official['binary CE']:.2f} %).\n"
            f"* **Does the network learn the expected target?** {grades[:1].upper() + grades[1:]}.\n\n"
            f"*Rule.* {MECHANISM_RULE}")