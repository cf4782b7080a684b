"""Grids of training runs and the tables the book makes of them.

A notebook states its experiment as a base :class:`~h3r.train.Config` and the axes it varies;
:func:`run_grid` trains what has not been trained yet (finished runs are read back from their
``results.json``, see :func:`h3r.train.run`) and returns one row per run. :func:`reevaluate`
evaluates a finished run's model again, with another decoder or on another test split, which is
how decoder-only comparisons (argmax + quarter offset on a model trained for argmax, the number of
activation points of H3R) and multi-split tables cost no training. :func:`mean_spread` turns rows into the "mean ± s.d. over seeds" cells of a table.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os

import pandas as pd

from h3r.provenance import atomic_path, pick_device, write_json_atomic
from h3r.train import Config, evaluate, load_checkpoint, run

METRICS = ("NME (%)", "FR@0.1 (%)", "AUC@0.1")


def grid(base: Config, **axes) -> list[Config]:
    """One config per combination of ``axes`` (a field name -> the values it takes)."""
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(axes) - fields)
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; the fields are {sorted(fields)}")
    names = list(axes)
    return [dataclasses.replace(base, **dict(zip(names, values))) for values in itertools.product(*axes.values())]


def _row(cfg: Config, results: dict, subset: str = "all") -> dict:
    summary = results["summary"].get(subset)
    if summary is None:
        raise KeyError(f"run {cfg.run_dir()} has no subset {subset!r}; it has {sorted(results['summary'])}")
    return {**dataclasses.asdict(cfg), **{m: summary[m] for m in METRICS}, "n": summary["n"],
            "params": results.get("params"), "macs": results.get("macs"),
            "train_seconds": results.get("train_seconds"), "cached": results.get("cached"),
            "device": results["provenance"]["device"], "commit": results["provenance"]["commit"],
            "run": str(cfg.run_dir())}


def run_grid(configs: list[Config], force: bool = False, subsets: bool = False, verbose: bool = False) -> pd.DataFrame:
    """Train (or read back) every config; one row per run (per subset too with ``subsets=True``).

    The ``cached`` column says which runs were read back rather than trained now."""
    rows = []
    for i, cfg in enumerate(configs, 1):
        if verbose:
            print(f"[{i}/{len(configs)}] {cfg.run_dir().name}", flush=True)
        results = run(cfg, force=force)
        names = list(results["summary"]) if subsets else ["all"]
        rows += [{**_row(cfg, results, name), "subset": name} for name in names]
    return pd.DataFrame(rows)


def reevaluate(cfg: Config, codec: str | None = None, split: str | None = None, score_mode: str | None = None,
               flip_test: bool | None = None, **codec_args) -> dict:
    """Evaluate the finished run ``cfg`` again, changing what evaluation may change: the decoder
    (``codec`` preset and its ``codec_args``), the test ``split``, ``score_mode``, ``flip_test``.

    The model is unchanged. Returns ``{"summary": ..., "predictions": path}``, stored in the run
    folder (``eval-<hash>.json`` and ``.pt``) and read back next time.
    """
    changes = {k: v for k, v in dict(test_split=split, score_mode=score_mode, flip_test=flip_test).items()
               if v is not None}
    evaluation = dataclasses.replace(cfg, **changes)
    codec = codec or cfg.codec
    key = hashlib.sha1(json.dumps([codec, codec_args, evaluation.test_split, evaluation.score_mode,
                                   evaluation.flip_test], sort_keys=True).encode()).hexdigest()[:12]
    path = cfg.run_dir() / f"eval-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    checkpoint = cfg.run_dir() / "checkpoint.pt"
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint} not found: train the run first (h3r.train.run)")
    import torch

    from h3r.codecs import build_codec
    from h3r.models import build_model
    from h3r.train import build_data

    state = load_checkpoint(checkpoint)
    device = pick_device(cfg.device)
    dataset = build_data(evaluation, evaluation.test_split, train=False)
    model = build_model(cfg.backbone, dataset.layout.num_keypoints, head=cfg.head,
                        heatmap_stride=cfg.heatmap_stride, width_mult=cfg.width_mult)
    model.load_state_dict(state["model"])
    decoder = build_codec(codec, cfg.input_size, stride=cfg.heatmap_stride, **codec_args)
    result = evaluate(evaluation, model.to(device), decoder, dataset, device)
    with atomic_path(path.with_suffix(".pt")) as tmp:
        torch.save(result["predictions"], tmp)
    out = {"summary": result["summary"], "predictions": str(path.with_suffix(".pt")),
           "codec": codec, "codec_args": codec_args, **changes}
    write_json_atomic(path, out)
    return out


def mean_spread(rows: pd.DataFrame, index, columns=None, value: str = "NME (%)", digits: int = 2) -> pd.DataFrame:
    """A table of ``mean ± s.d.`` strings over the rows that share ``index`` (and ``columns``);
    a single run shows its value alone."""
    keys = [index] if isinstance(index, str) else list(index)
    if columns is not None:
        keys += [columns] if isinstance(columns, str) else list(columns)
    stats = rows.groupby(keys, sort=False)[value].agg(["mean", "std", "count"])

    def cell(r) -> str:
        return f"{r['mean']:.{digits}f}" if r["count"] < 2 else f"{r['mean']:.{digits}f} ± {r['std']:.{digits}f}"

    text = stats.apply(cell, axis=1)
    return text.unstack(columns) if columns is not None else text.to_frame(value)


#: The training settings every learned chapter shares, per profile, so that a run one chapter
#: trains is found again by the next. Notebooks vary codec, stride, seed... on top of these.
#: Runs live under ``$H3R_RUNS/<profile>`` (default ``runs/``).
RUNS = os.environ.get("H3R_RUNS", "runs")
BASE = {
    # seconds: just enough to exercise the whole pipeline (CI and nbval)
    "smoke": Config(dataset="synthetic_faces", input_size=32, train_samples=32, test_samples=16, epochs=1,
                    batch_size=16, backbone="mobilenet_v2", width_mult=0.5, lr=3e-3, workers=0,
                    progress=False, out_dir=f"{RUNS}/smoke"),
    # the book on 2 CPU cores: MobileNetV2 x0.5 at 64 px, 3 x 1200 fresh faces (17 s a run on a quiet 2-core machine)
    "cpu": Config(dataset="synthetic_faces", input_size=64, train_samples=1200, test_samples=300, epochs=3,
                  batch_size=32, backbone="mobilenet_v2", width_mult=0.5, lr=3e-3, workers=2,
                  progress=False, out_dir=f"{RUNS}/cpu"),
    # the paper's network and resolution, on a GPU: HRNet-W18 at 256 px
    "paper": Config(dataset="synthetic_faces", input_size=256, train_samples=10_000, test_samples=2_000,
                    epochs=60, lr_milestones=[0.5, 0.83], batch_size=16, backbone="hrnet_w18", lr=1e-3,
                    workers=8, device="auto", progress=False, out_dir=f"{RUNS}/paper"),
}
SEEDS = {"smoke": [0], "cpu": [0, 1, 2], "paper": [0, 1, 2]}
