"""Grids of training runs and the tables the book makes of them.

A notebook states its experiment as a base :class:`~h3r.train.Config` and the axes it varies;
:func:`run_grid` trains what has not been trained yet (finished runs are read back, see
:func:`h3r.runs.run`) and returns one row per run, carrying its ``config``, so that a row is
re-evaluated with :func:`h3r.runs.reevaluate` (another decoder, another test split) without
rebuilding anything. :func:`mean_spread` turns rows into the "mean ± s.d. over seeds" cells of a
table.
"""
from __future__ import annotations

from h3r._extras import require

require("train", "h3r.experiments")

import dataclasses
import itertools
import math

import pandas as pd

from h3r.protocols import protocol
from h3r.runs import run
from h3r.train import Config

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
    return {**dataclasses.asdict(cfg), **{m: summary[m] for m in METRICS}, "n": summary["n"], "config": cfg,
            "params": results.get("params"), "macs": results.get("macs"),
            "train_seconds": results.get("train_seconds"), "cached": results.get("cached"),
            "device": results["provenance"]["device"], "commit": results["provenance"]["commit"],
            "run": str(cfg.run_dir())}


def run_grid(configs: list[Config], force: bool = False, subsets: bool = False, verbose: bool = False,
             jobs: int | None = None) -> pd.DataFrame:
    """Train (or read back) every config; one row per run (per subset too with ``subsets=True``).

    Runs that are not finished yet train ``jobs`` at a time in worker processes, longest first
    (:func:`longest_first`). ``jobs`` defaults to as many as the CPU cores hold runs of
    ``cfg.threads`` threads each, for CPU runs with a fixed thread count; else one at a time, in
    this process. Synthetic training data is rendered into the cache first, every epoch of every
    seed, spread over the same workers.

    Columns: every config field, the metrics, ``config`` (the :class:`Config` itself), ``cached``
    (read back rather than trained now), ``commit`` (where the numbers were computed), ``run``.

    The workers are spawned: a script that calls this needs the ``if __name__ == "__main__":``
    guard (notebooks do not)."""
    jobs = _default_jobs(configs) if jobs is None else jobs
    todo = [cfg for cfg in configs if force or not finished(cfg)]
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


def finished(cfg: Config) -> bool:
    """Whether ``cfg`` has results of its own config and code (:func:`h3r.runs.run` reads them back)."""
    import json

    path = cfg.run_dir() / "results.json"
    try:
        return json.loads(path.read_text()).get("key") == cfg.key()
    except (OSError, ValueError):
        return False


def _default_jobs(configs: list[Config]) -> int:
    import os

    threads = {cfg.threads for cfg in configs}
    if len(threads) != 1 or 0 in threads or any(cfg.device not in ("cpu", "auto") for cfg in configs):
        return 1
    from h3r.provenance import pick_device

    if pick_device(configs[0].device).type != "cpu":
        return 1
    return max(1, (os.cpu_count() or 1) // threads.pop())


def _run_in_workers(configs: list[Config], jobs: int, force: bool, verbose: bool) -> dict[str, dict]:
    """Train ``configs`` in a pool of ``jobs`` processes (spawned, so each starts clean); returns
    key -> results. The synthetic renders come first, one task per (seed, epoch) still missing."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    renders = sorted({task for cfg in configs for task in _render_tasks(cfg)})
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for done in pool.map(_render, renders):
            pass
        futures = {cfg.key(): pool.submit(_train, cfg, force) for cfg in longest_first(configs)}
        results = {}
        for i, (key, future) in enumerate(futures.items(), 1):
            results[key] = future.result()
            if verbose:
                print(f"[{i}/{len(futures)}] trained {results[key]['config']['codec']}", flush=True)
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
    from pathlib import Path

    from h3r.data.registry import SYNTHETIC

    if cfg.dataset not in SYNTHETIC or not cfg.render_cache:
        return []
    cache, cap = str(Path(cfg.out_dir) / ".render-cache"), cfg.max_steps * cfg.batch_size or None
    train, test = (min(n, cap or n) for n in (cfg.train_samples, cfg.test_samples))
    tasks = [(cfg.dataset, cfg.train_split, cfg.seed, epoch, train, cfg.input_size, cache) for epoch in range(cfg.epochs)]
    return tasks + [(cfg.dataset, cfg.test_split, cfg.seed, 0, test, cfg.input_size, cache)]


def _render(task: tuple) -> None:
    import torch

    from h3r.data.registry import build_dataset

    torch.set_num_threads(1)
    name, split, seed, epoch, length, size, cache = task
    dataset = build_dataset(name, split, input_size=size, seed=seed, length=length).enable_cache(cache)
    dataset.set_epoch(epoch)
    dataset.ensure_cached()


def _train(cfg: Config, force: bool) -> dict:
    return run(cfg, force=force)


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


# --- paired comparisons ----------------------------------------------------------------------------

def paired_differences(rows: pd.DataFrame, treatment: str, control: str, by="heatmap_stride",
                       label: str = "method", value: str = "NME (%)", pair: str = "seed",
                       confidence: float = 0.95) -> pd.DataFrame:
    """``treatment - control`` of ``value``, paired by ``pair`` (the same seed: the same data,
    initialisation and schedule), within each group of ``by``.

    ``rows`` hold one row per run with a ``label`` column naming its method. Returns, per group,
    ``mean`` of the paired differences, the two-sided Student-t ``confidence`` interval
    ``low``/``high`` over pairs (``n - 1`` degrees of freedom; NaN for a single pair), ``n``, and
    the per-pair ``differences``. A pair missing one side is left out and not counted.
    """
    from scipy import stats

    keys = [by] if isinstance(by, str) else list(by)
    wide = rows[rows[label].isin([treatment, control])].pivot_table(
        index=[*keys, pair], columns=label, values=value, aggfunc="first")
    if treatment not in wide or control not in wide:
        raise ValueError(f"rows hold no {label}={treatment!r} or {control!r}; "
                         f"they have {sorted(rows[label].unique())}")
    diff = (wide[treatment] - wide[control]).dropna()
    out = []
    for group, d in diff.groupby(level=keys, sort=True):
        n, mean = len(d), float(d.mean())
        half = (float(stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / n**0.5) if n > 1
                else float("nan"))
        group = group if isinstance(group, tuple) else (group,)
        out.append({**dict(zip(keys, group)), "treatment": treatment, "control": control, "mean": mean,
                    "low": mean - half, "high": mean + half, "n": n, "differences": d.round(4).tolist()})
    return pd.DataFrame(out)


#: the rule of :func:`verdict`, for a page to state before the numbers
VERDICT_RULE = ("A paired difference supports the claim where its whole 95 % interval lies on the claimed side of 0, "
                "contradicts it where it lies on the other side, and is within noise where it contains 0.")


def verdict(low: float, high: float, claimed: str = "lower") -> str:
    """The verdict of a paired difference's interval on a claim that the treatment's value is
    ``claimed`` ("lower" or "higher") than the control's: ``supported`` where the whole interval
    lies on the claimed side of 0, ``contradicted`` where it lies on the other, and
    ``not shown`` (within noise) where it contains 0 or is undefined."""
    if claimed not in ("lower", "higher"):
        raise ValueError(f"claimed must be 'lower' or 'higher', got {claimed!r}")
    if not (low == low and high == high):  # NaN: a single pair
        return "not shown"
    sign = -1 if claimed == "lower" else 1
    if sign * low > 0 and sign * high > 0:
        return "supported"
    if sign * low < 0 and sign * high < 0:
        return "contradicted"
    return "not shown"


# --- graded verdicts --------------------------------------------------------------------------------

#: the largest growth (NME at the coarsest stride / NME at the finest) that still reads as flat
FLAT_GROWTH = 1.25
#: the largest share of the deterministic codec's excess growth (growth - 1) that reads as "partly"
PARTLY_GROWTH_SHARE = 0.5
GROWTH_RULE = (f"Growth is the NME at the coarsest stride divided by the NME at the finest. Supported (nearly flat): "
               f"the randomized codec's growth is at most ×{FLAT_GROWTH}; partly: it grows, but its excess growth "
               f"(growth − 1) is at most {PARTLY_GROWTH_SHARE:g} of the deterministic codec's; not supported "
               f"otherwise.")


def growth_verdict(h3r_growth: float, vanilla_growth: float) -> str:
    """:data:`GROWTH_RULE` on the growth ratios (NME at the coarsest stride / at the finest) of the
    randomized codec and of its deterministic control: ``"supported"``, ``"partly"`` or
    ``"not supported"``."""
    if h3r_growth <= FLAT_GROWTH:
        return "supported"
    if h3r_growth - 1 <= PARTLY_GROWTH_SHARE * (vanilla_growth - 1):
        return "partly"
    return "not supported"


#: the least share of the predicted mass on the 4 rounding neighbours that reads as "mostly"
MOSTLY_MASS = 0.9
#: the largest error to the bilinear weights, as a share of an even split's, that reads as "mostly"
MOSTLY_ERROR_SHARE = 0.5
MECHANISM_RULE = (f"Per stride, from the share of the predicted mass on the 4 rounding neighbours (mass) and the mean "
                  f"absolute difference between the renormalised predicted weights and the bilinear ones (error), "
                  f"against the error of an even split (uniform): mostly if the mass is at least {MOSTLY_MASS:g} and "
                  f"the error at most {MOSTLY_ERROR_SHARE:g} × uniform; partly if the error is below uniform; "
                  f"not supported otherwise.")


def mechanism_verdict(mass: float, error: float, uniform: float) -> str:
    """:data:`MECHANISM_RULE` on the claim that a network trained on randomized one-hot targets
    learns the expected target (:func:`h3r.study.mechanism`'s ``mass``, ``error`` and ``uniform``):
    ``"mostly"``, ``"partly"`` or ``"not supported"``."""
    if mass >= MOSTLY_MASS and error <= MOSTLY_ERROR_SHARE * uniform:
        return "mostly"
    if error < uniform:
        return "partly"
    return "not supported"


# --- the real benchmarks, by their protocol ------------------------------------------------------

def benchmark_status(dataset: str, data_root=None) -> str:
    """``"found"`` when the training split and every test split of ``dataset``'s protocol load
    from ``data_root``, else ``"needs data (looked for <the first missing file>)"``."""
    from h3r.data.annotated import DatasetNotFoundError
    from h3r.data.registry import build_dataset

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
    import torch

    from h3r import metrics
    from h3r.evaluation import coco_ap
    from h3r.runs import reevaluate
    from h3r.train import build_data

    p = protocol(base.dataset)
    rows = []
    for run_row in run_grid(grid(base, codec=list(codecs), seed=list(seeds)), force=force).itertuples():
        for split in p.test_splits:
            result = reevaluate(run_row.config, split=split)
            key = dict(codec=run_row.codec, seed=run_row.seed, split=split)
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
