"""One run's lifecycle: trained once, then read back, loaded and re-evaluated.

    results = run(cfg)                 # trains, or reads the results.json of the same config and code
    model, codec = load_run(cfg)       # the trained network and its codec
    reevaluate(cfg, codec="dark")      # the same network decoded otherwise; cached in the run folder
    reevaluate_decoders(cfg, [("h3r", {"k": 1}), ("h3r", {"k": 4})])   # several, one network pass
    evaluate_run("runs/<name>", protocol="official")   # what ``h3r eval --run`` prints

A run is keyed by its config and the fingerprint of the code that computes it
(:meth:`h3r.train.Config.key`), so a finished run is only reused by the code that would have
produced it; ``results.json`` records both, with the commit it was computed at.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch

from h3r.codecs import Codec, build_codec
from h3r.evaluation import evaluate_decoders, evaluate_model
from h3r.models import HeatmapModel
from h3r.provenance import atomic_path, pick_device, provenance, write_json_atomic
from h3r.train import CheckpointError, Config, build_data, build_run, load_checkpoint, train


def run(cfg: Config, force: bool = False) -> dict:
    """The results of ``cfg``: read from ``results.json`` if that run finished before, else trained.

    ``force=True`` retrains from scratch (the old run folder is moved aside, not deleted). The
    returned dict says ``cached`` (read back) or not.
    """
    results_path = cfg.run_dir() / "results.json"
    if force and cfg.run_dir().exists():
        cfg.run_dir().rename(cfg.run_dir().with_name(cfg.run_dir().name + f".old-{int(time.time())}"))
    if results_path.exists():
        try:
            results = json.loads(results_path.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{results_path} is damaged ({err}); delete it to re-evaluate the run") from None
        if results.get("key") == cfg.key():
            results["cached"] = True
            return results
    results = train(cfg)
    if results:  # the other ranks of a DDP run return nothing
        results["cached"] = False
    return results


def load_run(cfg: Config, device: str | torch.device = "cpu") -> tuple[HeatmapModel, Codec]:
    """The trained network of run ``cfg`` (from its ``checkpoint.pt``, in eval mode on ``device``)
    and its codec."""
    checkpoint = cfg.run_dir() / "checkpoint.pt"
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint} not found: train the run first (h3r.runs.run)")
    model, codec = build_run(cfg)
    model.load_state_dict(load_checkpoint(checkpoint)["model"])
    return model.to(device).eval(), codec


def reevaluate(cfg: Config, codec: str | None = None, split: str | None = None, score_mode: str | None = None,
               flip_test: bool | None = None, **codec_args) -> dict:
    """Evaluate the finished run ``cfg`` again, changing what evaluation may change: the decoder
    (``codec`` preset and its ``codec_args``), the test ``split``, ``score_mode``, ``flip_test``.

    The network is unchanged. Returns ``{"summary": ..., "predictions": path}``, stored in the run
    folder (``eval-<hash>.json`` and ``.pt``) and read back next time.
    """
    return reevaluate_decoders(cfg, [(codec, codec_args)], split, score_mode, flip_test)[0]


def reevaluate_decoders(cfg: Config, decoders: list[tuple[str | None, dict]], split: str | None = None,
                        score_mode: str | None = None, flip_test: bool | None = None) -> list[dict]:
    """:func:`reevaluate` with each of ``decoders`` (``(codec preset or None, codec_args)``), in
    their order: those not stored yet from one pass of the network over the test set."""
    changes = {k: v for k, v in dict(test_split=split, score_mode=score_mode, flip_test=flip_test).items()
               if v is not None}
    evaluation = dataclasses.replace(cfg, **changes)
    decoders = [(codec or cfg.codec, dict(args)) for codec, args in decoders]
    paths = [cfg.run_dir() / f"eval-{_evaluation_key(codec, args, evaluation)}.json" for codec, args in decoders]
    missing = [i for i, path in enumerate(paths) if not path.exists()]
    if missing:
        device = pick_device(cfg.device)
        model, _ = load_run(cfg, device)
        codecs = [build_codec(decoders[i][0], cfg.input_size, stride=cfg.heatmap_stride, **decoders[i][1])
                  for i in missing]
        dataset = build_data(evaluation, evaluation.test_split, train=False)
        for i, result in zip(missing, evaluate_decoders(model, codecs, dataset, device, **evaluation.eval_options)):
            path = paths[i]
            with atomic_path(path.with_suffix(".pt")) as tmp:
                torch.save(result["predictions"], tmp)
            codec, args = decoders[i]
            write_json_atomic(path, {"summary": result["summary"], "predictions": str(path.with_suffix(".pt")),
                                     "codec": codec, "codec_args": args, **changes})
    return [json.loads(path.read_text()) for path in paths]


def _evaluation_key(codec: str, codec_args: dict, evaluation: Config) -> str:
    return hashlib.sha1(json.dumps([codec, codec_args, evaluation.test_split, evaluation.score_mode,
                                   evaluation.flip_test], sort_keys=True).encode()).hexdigest()[:12]


def evaluate_run(run_dir: str | Path, protocol: str = "ours", split: str | None = None,
                 flip_test: bool | None = None, device: str = "auto", progress: bool = True) -> dict:
    """Re-evaluate a run trained by ``h3r train`` from its folder (``checkpoint.pt``).

    ``protocol="ours"`` rebuilds the run's own test set; ``"official"`` cuts the same faces (the
    run's box, input size) with the official crop and mapping (benchmarks with an
    ``official_split`` in :data:`h3r.protocols.PROTOCOLS` only): what the official test script would
    report for this model, half-pixel offsets included. The run's codec decodes in both.
    """
    from h3r.data.registry import build_dataset
    from h3r.protocols import official_benchmarks

    run_dir = Path(run_dir)
    saved = run_dir / "checkpoint.pt"
    if not saved.is_file():
        raise FileNotFoundError(f"no checkpoint at {saved}: give the folder of a run started by `h3r train`")
    state = load_checkpoint(saved)
    cfg = Config.from_dict({**state["config"], "device": device, "progress": progress})
    if flip_test is not None:
        cfg.flip_test = flip_test
    split = split or cfg.test_split
    if protocol == "official" and cfg.dataset not in official_benchmarks():
        raise ValueError(f"the official protocol is defined for {sorted(official_benchmarks())} (the official "
                         f"test scripts), not {cfg.dataset!r}; use protocol='ours'")
    dev = pick_device(cfg.device)
    if protocol == "ours":
        data = build_data(cfg, split, train=False)
    else:
        data = build_dataset(cfg.dataset, split, data_root=cfg.data_root, input_size=cfg.input_size, box=cfg.box,
                             protocol=protocol)
    model, codec = build_run(cfg)
    model.load_state_dict(state["model"])
    evaluation = evaluate_model(model.to(dev), codec, data, dev, **cfg.eval_options)
    return {"protocol": protocol, "run": str(run_dir), "dataset": cfg.dataset, "split": split,
            "epoch": state["epoch"], "samples": len(data), "summary": evaluation["summary"],
            "provenance": provenance(dev), "predictions": evaluation["predictions"]}
