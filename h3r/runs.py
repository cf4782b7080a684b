"""The run layer: runs trained once, then read back, loaded and re-evaluated; grids of them.

    results = run(cfg)                 # trains, or reads the results of the same config and code
    model, codec = load_run(cfg)       # the trained network and its codec
    reevaluate(cfg, codec="dark")      # the same network decoded otherwise; cached in the run folder
    reevaluate_decoders(cfg, [("h3r", {"k": 1}), ("h3r", {"k": 4})])   # several, one network pass
    evaluate_run("runs/<name>", protocol="official")   # what ``h3r eval --run`` prints
    rows = run_grid(grid(base, preset=["h3r", "dark"], seed=[0, 1, 2]))  # one row per run

A run is keyed by its config and the fingerprint of the code that computes it
(:meth:`h3r.config.Config.key`), so a finished run is only reused by the code that would have
produced it; its ``results.json`` (:class:`h3r.config.RunFolder`) records both, with the commit it
was computed at. :func:`run_grid` trains what has not been trained yet, several runs at a time in
worker processes on a CPU, with the synthetic training data rendered into a shared cache first,
and returns one row per run, carrying its ``config``, so that a row is re-evaluated with
:func:`reevaluate` (another decoder, another test split) without rebuilding anything.
"""
from __future__ import annotations

from h3r._extras import require

require("train", "h3r.runs")

import dataclasses
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import torch

from h3r import metrics
from h3r.codecs import Codec, build_codec
from h3r.config import Config, RunFolder
from h3r.data.annotated import DatasetNotFoundError
from h3r.data.registry import SYNTHETIC, build_dataset
from h3r.evaluation import coco_ap, evaluate_decoders, evaluate_model
from h3r.models import KeypointModel
from h3r.protocols import official_benchmarks, protocol
from h3r.provenance import atomic_path, pick_device, provenance, write_json_atomic
from h3r.train import build_data, build_run, load_checkpoint, train

#: the metrics of a run's summary that :func:`run_grid` puts in its rows
ROW_METRICS = ("NME (%)", "FR@0.1 (%)", "AUC@0.1")


def run(cfg: Config, force: bool = False) -> dict:
    """The results of ``cfg``: read from ``results.json`` if that run finished before, else trained.

    ``force=True`` retrains from scratch (the old run folder is moved aside, not deleted). The
    returned dict says ``cached`` (read back) or not.
    """
    folder = cfg.folder
    if force and folder.path.exists():
        folder.path.rename(folder.path.with_name(folder.path.name + f".old-{int(time.time())}"))
    results = folder.read_results()
    if results is not None and results.get("key") == cfg.key():
        results["cached"] = True
        return results
    results = train(cfg)
    if results:  # the other ranks of a DDP run return nothing
        results["cached"] = False
    return results


def load_run(cfg: Config, device: str | torch.device = "cpu") -> tuple[KeypointModel, Codec]:
    """The trained network of run ``cfg`` (from its checkpoint, in eval mode on ``device``) and its
    codec."""
    checkpoint = cfg.folder.checkpoint
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint} not found: train the run first (h3r.runs.run)")
    return _network(cfg, load_checkpoint(checkpoint), device)


def _network(cfg: Config, state: dict, device: str | torch.device) -> tuple[KeypointModel, Codec]:
    """The network and codec of ``cfg`` with the weights of checkpoint ``state``, in eval mode."""
    model, codec = build_run(cfg)
    model.load_state_dict(state["model"])
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
    decoders = [(codec or cfg.preset, dict(args)) for codec, args in decoders]
    paths = [cfg.folder.evaluation(_evaluation_key(codec, args, evaluation)) for codec, args in decoders]
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
    """Re-evaluate a run trained by ``h3r train`` from its folder (its checkpoint).

    ``protocol="ours"`` rebuilds the run's own test set; ``"official"`` cuts the same faces (the
    run's box, input size) with the official crop and mapping (benchmarks with an
    ``official_split`` in :data:`h3r.protocols.PROTOCOLS` only): what the official test script would
    report for this model, half-pixel offsets included. The run's codec decodes in both.
    """
    run_dir = Path(run_dir)
    saved = RunFolder(run_dir).checkpoint
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
    model, codec = _network(cfg, state, dev)
    evaluation = evaluate_model(model, codec, data, dev, **cfg.eval_options)
    return {"protocol": protocol, "run": str(run_dir), "dataset": cfg.dataset, "split": split,
            "epoch": state["epoch"], "samples": len(data), "summary": evaluation["summary"],
            "provenance": provenance(dev), "predictions": evaluation["predictions"]}


# --- grids of runs ----------------------------------------------------------------------------------

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
    return {**dataclasses.asdict(cfg), **{m: summary[m] for m in ROW_METRICS}, "n": summary["n"], "config": cfg,
            "params": results.get("params"), "macs": results.get("macs"),
            "train_seconds": results.get("train_seconds"), "cached": results.get("cached"),
            "device": results["provenance"]["device"], "commit": results["provenance"]["commit"],
            "run": str(cfg.run_dir())}


def run_grid(configs: list[Config], force: bool = False, subsets: bool = False, verbose: bool = False,
             jobs: int | None = None) -> pd.DataFrame:
    """Train (or read back) every config; one row per run (per subset too with ``subsets=True``).

    Runs that are not finished yet (:meth:`h3r.config.RunFolder.finished`) train ``jobs`` at a time in worker processes, longest first
    (:func:`longest_first`). ``jobs`` defaults to as many as the CPU cores hold runs of
    ``cfg.threads`` threads each, for CPU runs with a fixed thread count; else one at a time, in
    this process. Synthetic training data is rendered into the cache first, every epoch of every
    seed, spread over the same workers.

    Columns: every config field, the metrics, ``config`` (the :class:`Config` itself), ``cached``
    (read back rather than trained now), ``commit`` (where the numbers were computed), ``run``.

    The workers are spawned: a script that calls this needs the ``if __name__ == "__main__":``
    guard (notebooks do not)."""
    jobs = _default_jobs(configs) if jobs is None else jobs
    todo = [cfg for cfg in configs if force or not cfg.folder.finished(cfg.key())]
    results = {}
    if jobs > 1 and len(todo) > 1:
        results = _run_in_workers(todo, jobs, force, verbose)
    rows = []
    for i, cfg in enumerate(configs, 1):
        if verbose and cfg.key() not in results:
            print(f"[{i}/{len(configs)}] {cfg.run_dir().name}", flush=True)
        result = results.get(cfg.key()) or run(cfg, force=force and cfg.key() not in results)
        names = list(result["summary"]) if subsets else ["all"]
        rows += [{**_row(cfg, result, name), "subset": name} for name in names]
    return pd.DataFrame(rows)


def run_variants(base: Config, variants: dict[str, dict], seeds, force: bool = False) -> pd.DataFrame:
    """Train (or read back) each variant of ``base`` (label -> the fields it changes) for every
    seed, all in one :func:`run_grid` (side by side); its rows with a ``variant`` column."""
    labelled = [(label, cfg) for label, changes in variants.items()
                for cfg in grid(dataclasses.replace(base, **changes), seed=list(seeds))]
    return run_grid([cfg for _, cfg in labelled], force=force).assign(variant=[label for label, _ in labelled])


def _default_jobs(configs: list[Config]) -> int:
    threads = {cfg.threads for cfg in configs}
    if len(threads) != 1 or 0 in threads or any(cfg.device not in ("cpu", "auto") for cfg in configs):
        return 1
    if pick_device(configs[0].device).type != "cpu":
        return 1
    return max(1, (os.cpu_count() or 1) // threads.pop())


def _run_in_workers(configs: list[Config], jobs: int, force: bool, verbose: bool) -> dict[str, dict]:
    """Train ``configs`` in a pool of ``jobs`` processes (spawned, so each starts clean); returns
    key -> results. The synthetic renders come first, one task per (seed, epoch) still missing."""
    renders = sorted({task for cfg in configs for task in _render_tasks(cfg)})
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for done in pool.map(_render, renders):
            pass
        futures = {cfg.key(): pool.submit(_train, cfg, force) for cfg in longest_first(configs)}
        results = {}
        for i, (key, future) in enumerate(futures.items(), 1):
            results[key] = same_code(key, future.result())
            if verbose:
                print(f"[{i}/{len(futures)}] trained {results[key]['config']['preset']}", flush=True)
    return results


def same_code(key: str, results: dict) -> dict:
    """``results`` of a run a worker trained for the config keyed ``key`` here; an error where the
    worker keyed it otherwise: h3r's code changed while the grid ran, so the worker trained with
    other code (and wrote to another run folder) than this process would read."""
    if results.get("key") != key:
        raise RuntimeError(f"h3r's code changed while this grid ran: a worker trained run {results.get('key')} "
                           f"where this process expected {key}; run the grid again with the code unchanged")
    return results


def longest_first(configs: list[Config]) -> list[Config]:
    """``configs`` in the order a pool should start them: the longest runs first, so that the last
    ones to finish are short and no worker idles long at the end. Length is judged by the images
    trained (epochs x samples x pixels), then by the heatmap cells (a smaller stride costs more)."""
    def work(cfg: Config) -> tuple:
        steps = min(cfg.epochs * cfg.train_samples, cfg.max_steps * cfg.batch_size or math.inf)
        return steps * cfg.input_size**2, -cfg.heatmap_stride

    return sorted(configs, key=work, reverse=True)


def _render_tasks(cfg: Config) -> list[tuple]:
    """(dataset, split, seed, epoch, length, input size, cache folder) of the renders ``cfg`` needs."""
    if cfg.dataset not in SYNTHETIC or not cfg.render_cache:
        return []
    cache, cap = str(Path(cfg.out_dir) / ".render-cache"), cfg.max_steps * cfg.batch_size or None
    train, test = (min(n, cap or n) for n in (cfg.train_samples, cfg.test_samples))
    epochs = range(cfg.epochs) if cfg.fresh_samples else [0]
    tasks = [(cfg.dataset, cfg.train_split, cfg.seed, epoch, train, cfg.input_size, cache) for epoch in epochs]
    return tasks + [(cfg.dataset, cfg.test_split, cfg.seed, 0, test, cfg.input_size, cache)]


def _render(task: tuple) -> None:
    torch.set_num_threads(1)
    name, split, seed, epoch, length, size, cache = task
    dataset = build_dataset(name, split, input_size=size, seed=seed, length=length).enable_cache(cache)
    dataset.set_epoch(epoch)
    dataset.ensure_cached()


def _train(cfg: Config, force: bool) -> dict:
    return run(cfg, force=force)


# --- the real benchmarks, by their protocol ------------------------------------------------------

def benchmark_status(dataset: str, data_root=None) -> str:
    """``"found"`` when the training split and every test split of ``dataset``'s protocol load
    from ``data_root``, else ``"needs data (looked for <the first missing file>)"``."""
    p = protocol(dataset)
    try:
        for split in (p.train_split, *p.test_splits):
            build_dataset(dataset, split, data_root=data_root)
    except DatasetNotFoundError as err:
        return f"needs data (looked for {err.missing[0]})"
    return "found"


def benchmark_config(base: Config, dataset: str, data_root=None, full_size: bool = False) -> Config:
    """``base`` trained on ``dataset`` as its protocol says: its training split, its first test
    split, and its input size when ``full_size`` (else ``base``'s, for small profiles)."""
    p = protocol(dataset)
    size = p.input_size[0] if p.input_size[0] == p.input_size[1] else p.input_size
    return dataclasses.replace(base, dataset=dataset, data_root=None if data_root is None else str(data_root),
                               train_split=p.train_split, test_split=p.test_split,
                               input_size=size if full_size else base.input_size)


def benchmark_rows(base: Config, codecs, seeds, force: bool = False) -> pd.DataFrame:
    """Train ``base`` (a :func:`benchmark_config`) with every codec and seed, evaluate each run on
    every test split of its protocol, and return one row per (codec, seed, split, subset) with
    the protocol's metric: NME/FR/AUC per subset, the PCKh table, or COCO keypoint AP."""
    p = protocol(base.dataset)
    rows = []
    for run_row in run_grid(grid(base, preset=list(codecs), seed=list(seeds)), force=force).itertuples():
        for split in p.test_splits:
            result = reevaluate(run_row.config, split=split)
            key = dict(preset=run_row.preset, seed=run_row.seed, split=split)
            if p.metric == "nme":
                rows += [dict(**key, subset=subset, **values) for subset, values in result["summary"].items()]
                continue
            predictions = torch.load(result["predictions"], weights_only=False)
            if p.metric == "pckh":
                values = metrics.mpii_pckh_table(predictions["pred"], predictions["gt"], predictions["visible"],
                                                 predictions["normalizer"])
            else:
                dataset = build_data(dataclasses.replace(run_row.config, test_split=split), split, train=False)
                full = getattr(dataset, "dataset", dataset)  # under max_steps, a Subset of it
                values = coco_ap(predictions, full.annotation_file)
            rows.append(dict(**key, subset="all", **values))
    return pd.DataFrame(rows)
