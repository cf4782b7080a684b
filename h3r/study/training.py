"""Chapter 4, how the networks are trained: the profile's training setup as the book states it, the
schedule search behind it, and the learning curves of the resolution study's runs.
"""
from __future__ import annotations

import json

import pandas as pd

# --- the design and its numbers ------------------------------------------------------------


def learning_curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Test NME against epoch, from each run's ``metrics.jsonl`` (the per-epoch evaluations of a
    config with ``eval_every``); columns ``method, heatmap_stride, seed, epoch, NME (%)``."""
    out = []
    for row in rows[~rows.get("decoder_only", False)].itertuples():
        path = row.config.run_dir() / "metrics.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            log = json.loads(line)
            if "eval" in log:
                out.append({"method": row.method if hasattr(row, "method") else row.preset,
                            "heatmap_stride": row.heatmap_stride, "seed": row.seed, "epoch": log["epoch"],
                            "NME (%)": log["eval"]["NME (%)"], "loss": log["loss"]})
    return pd.DataFrame(out, columns=["method", "heatmap_stride", "seed", "epoch", "NME (%)", "loss"])


# --- its tables and sentences ------------------------------------------------------------


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
