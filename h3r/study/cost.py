"""Chapter 7, accuracy against cost: H3R at a smaller input against vanilla heatmap regression at a
larger one (paired by seed), the parameters and multiply-accumulates of the paper's networks, and
training throughput (measured by :mod:`h3r.benchmarks` in a process of its own).
"""
from __future__ import annotations

import dataclasses
import itertools

import pandas as pd

from h3r.config import Config
from h3r.stats import SAID, bounds_text, difference_text, paired_differences, verdict
from h3r.study.resolution import resolution_study

# --- the design and its numbers ------------------------------------------------------------


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


def cost_runs(settings, force: bool = False) -> pd.DataFrame:
    """Chapter 7's runs as every chapter reads them: :func:`cost_study` with the resolved settings
    of chapter ``cost`` (its input sizes and seeds, and chapter 5's sigma of the Gaussian targets,
    whose runs they share at its input size)."""
    return cost_study(settings.base, settings.input_sizes, settings.seeds, sigma=settings.sigma, force=force)


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
    labelled = runs.assign(method=[f"{c}@{s}" for c, s in zip(runs.preset, runs.input_size)], pair="all")
    macs = runs.groupby(["preset", "input_size"]).GMACs.first()
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


# --- its tables and sentences ------------------------------------------------------------


def cost_pairs_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """:func:`h3r.study.cost.cross_resolution` as the book shows it: per pair of input sizes, H3R minus
    argmax-round in NME points, its 95 % interval as text, the seeds, the verdict and H3R's share
    of argmax-round's MACs."""
    return pd.DataFrame({
        "h3r input": pairs["h3r input"], "argmax-round input": pairs["argmax-round input"],
        "difference (NME points)": [difference_text(*r) for r in
                                    zip(pairs["mean"], pairs.treatment_mean, pairs.control_mean)],
        "95 % interval": [bounds_text(lo, hi) for lo, hi in zip(pairs.low, pairs.high)], "seeds": pairs.n,
        "verdict": pairs.verdict.map(lambda v: SAID.get(v, v)), "MACs ratio": pairs["MACs ratio"].map("{:.2f}".format)})


def cost_answer(pairs: pd.DataFrame) -> str:
    """Chapter 7's answer: one Markdown bullet per pair of :func:`h3r.study.cost.cross_resolution` where
    H3R has the smaller input, with its paired difference, verdict and share of the MACs."""
    below = pairs[pairs["h3r input"] < pairs["argmax-round input"]]
    lines = [f"* H3R at {r['h3r input']} px minus argmax-round at {r['argmax-round input']} px: "
             + f"{difference_text(r['mean'], r.treatment_mean, r.control_mean)} points "
             + (f"{bounds_text(r['low'], r['high'])} ({r['n']} seeds)" if r["n"] > 1 else "(one seed)")
             + f", **{SAID.get(r['verdict'], r['verdict'])}**, at {r['MACs ratio']:.2f} of the MACs"
             for _, r in below.iterrows()]
    return "\n".join(lines) or "One input size only: no smaller-against-larger pair."
