"""Training and evaluation: one loop for 2 CPU cores and for GPUs.

Driven by a plain :class:`Config`; the notebooks map their papermill parameters onto it and the
command line (``h3r train --help``) exposes every field. GPU runs use bf16 autocast, channels_last
and pinned-memory workers; several GPUs use PyTorch DDP launched by ``torchrun``. The CPU runs
the same code.

A run lives in its folder, ``<out_dir>/<name>/`` (``name`` defaults to a hash of the config, so a
finished run is found again instead of retrained), whose files :class:`h3r.config.RunFolder` names.

``resume=True`` continues from the checkpoint. Every random draw (data order, augmentation,
randomized rounding) is derived from ``(seed, epoch)``, so a resumed run ends with the same
numbers as an uninterrupted one.
"""
from __future__ import annotations

from h3r._extras import require

require("train", "h3r.train")

import dataclasses
import inspect
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset
from tqdm import tqdm

from h3r.codecs import Codec, build_codec
from h3r.config import Config, code_fingerprint
from h3r.evaluation import evaluate_model
from h3r.losses import build_loss
from h3r.models import KeypointModel, build_model, count_flops, count_params, to_float
from h3r.provenance import atomic_path, pick_device, provenance, write_json_atomic

# --- building blocks ---------------------------------------------------------------------------

def build_data(cfg: Config, split: str, train: bool) -> Dataset:
    """The synthetic benchmarks render fresh samples every training epoch (``train_samples`` each;
    with ``fresh_samples=False`` the same ones every epoch); real datasets get the crop
    augmentation of :class:`h3r.data.transforms.Augment` when training. With ``max_steps`` every
    split is cut to ``max_steps`` batches."""
    from torch.utils.data import Subset

    from h3r.data.registry import SYNTHETIC, build_dataset
    from h3r.data.transforms import Augment

    cap = cfg.max_steps * cfg.batch_size or None
    if cfg.dataset in SYNTHETIC:
        length = cfg.train_samples if train else cfg.test_samples
        dataset = build_dataset(cfg.dataset, split=split, input_size=cfg.input_size, seed=cfg.seed,
                                length=min(length, cap or length))
        dataset.fresh = cfg.fresh_samples
        return dataset.enable_cache(Path(cfg.out_dir) / ".render-cache") if cfg.render_cache else dataset
    dataset = build_dataset(cfg.dataset, split=split, data_root=cfg.data_root, input_size=cfg.input_size,
                            augment=Augment() if cfg.augment and train else None, box=cfg.box, seed=cfg.seed)
    if cap is None or len(dataset) <= cap:
        return dataset
    capped = Subset(dataset, range(cap))
    capped.layout, capped.input_size, capped.set_epoch = dataset.layout, dataset.input_size, dataset.set_epoch
    return capped


def build_run(cfg: Config) -> tuple[KeypointModel, Codec]:
    """The network (initialised from ``cfg.seed``, in ``cfg``'s memory format) and the codec of a run.

    The keypoint count comes from the dataset's layout, so nothing is read from disk; the same
    seed gives the same initial weights to every codec of a study.
    """
    from h3r.data.registry import dataset_class

    codec = build_codec(cfg.preset, cfg.input_size, stride=cfg.heatmap_stride, **cfg.codec_args)
    torch.manual_seed(cfg.seed)
    layout = dataset_class(cfg.dataset).layout
    model = build_model(cfg.backbone, layout.num_keypoints, head=cfg.head, heatmap_stride=cfg.heatmap_stride,
                        width_mult=cfg.width_mult, pretrained=cfg.pretrained, head_width=cfg.head_width or None,
                        input_size=cfg.input_size, split_ratio=getattr(codec, "split_ratio", 2.0))
    if cfg.channels_last:  # the same memory format for training and every later evaluation
        model = model.to(memory_format=torch.channels_last)
    return model, codec


SCHEDULES = ("multistep", "cosine", "onecycle")


def lr_factor(cfg: Config, step: int, total: int) -> float:
    """The learning rate of ``step`` (of ``total``) as a fraction of ``cfg.lr``.

    ``multistep``: times ``lr_gamma`` from each of ``lr_milestones`` on. ``cosine``: a linear warm-up
    over the first ``warmup`` fraction, then a half cosine to 0. ``onecycle``: the same warm-up,
    then a linear decay to 0.
    """
    if cfg.schedule == "multistep":
        return cfg.lr_gamma ** sum(step >= int(round(m * total)) for m in cfg.lr_milestones)
    warm = int(round(cfg.warmup * total))
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return 0.5 * (1 + math.cos(math.pi * t)) if cfg.schedule == "cosine" else 1 - t


def lr_schedule(cfg: Config, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
    total = cfg.epochs * steps_per_epoch
    # MultiStepLR multiplies by gamma at each milestone; lr_factor's power of gamma can differ in the
    # last bit, which would change every multistep run's numbers
    if cfg.schedule == "multistep":
        milestones = sorted(int(round(m * total)) for m in cfg.lr_milestones)
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=cfg.lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, total))


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if cfg.optimizer not in kinds:
        raise ValueError(f"optimizer must be one of {sorted(kinds)}, got {cfg.optimizer!r}")
    # one fused kernel per step instead of a dozen ops per tensor, where torch has one
    fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
    return kinds[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def keep_freed_memory(mmap_threshold: int = 32 << 20) -> bool:
    """Let glibc's ``malloc`` keep freed blocks up to ``mmap_threshold`` bytes for reuse instead of
    handing them back to the system; returns whether it could (Linux with glibc only).

    By default every block above a threshold that adapts to what the process frees is mapped
    afresh and unmapped on free, so a CPU training step faults in the pages of its activations anew
    on every step; keeping them saves that work and changes no number. Process-wide, as the
    ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` environment variables would be.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, mmap_threshold)) and bool(mallopt(m_trim_threshold, 2 * mmap_threshold))


def epoch_seed(cfg: Config, epoch: int, stream: int) -> int:
    """Seeds of the random streams of one epoch: 0 data order, 1 randomized rounding."""
    return (cfg.seed * 1_000_003 + epoch * 101 + stream) % (2**63)


DRAWS = ("fresh", "fixed")


def check_draw(cfg: Config, codec: Codec) -> None:
    """A clear error, before any training, where ``cfg.draw`` is unknown or fixes the draw of a
    codec that draws nothing."""
    if cfg.draw not in DRAWS:
        raise ValueError(f"draw must be one of {DRAWS}, got {cfg.draw!r}")
    if cfg.draw == "fixed" and "uniforms" not in inspect.signature(codec.encode).parameters:
        raise ValueError(f"draw='fixed' keeps a randomized-rounding draw per sample, and preset {cfg.preset!r} "
                         f"draws nothing; use a codec that draws (h3r, gauss-random, simcc-random)")


def fixed_uniforms(cfg: Config, samples: int, keypoints: int, device: torch.device) -> Tensor:
    """The uniforms (samples, K, 2) of ``draw="fixed"``: randomized rounding's draw of sample ``i``
    compares ``uniforms[i]`` with the fractional parts, so a sample seen again (not moved by
    augmentation) gets the same neighbours, as if drawn once when the dataset was built."""
    generator = torch.Generator().manual_seed(epoch_seed(cfg, 0, 2))
    return torch.rand((samples, keypoints, 2), generator=generator).to(device)


# --- distributed ---------------------------------------------------------------------------------

def init_distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), world


# --- checkpoints ---------------------------------------------------------------------------------

class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path: Path, **state) -> None:
    """Write atomically: a crash leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}. The file is "
                              f"damaged; delete it to start the run afresh, or pass resume=False") from None
    missing = {"model", "optimizer", "scheduler", "epoch", "config"} - set(state) if isinstance(state, dict) else {"*"}
    if missing:
        raise CheckpointError(f"{path} is not an h3r training checkpoint (missing {sorted(missing)})")
    return state


# --- the loop ------------------------------------------------------------------------------------

def train(cfg: Config) -> dict:
    """Train (or resume) the run described by ``cfg``, evaluate it, return the results dict."""
    rank, local_rank, world = init_distributed()
    device = pick_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu":
        keep_freed_memory()
    folder = cfg.folder
    ckpt_path = folder.checkpoint

    train_set, test_set = build_data(cfg, cfg.train_split, True), build_data(cfg, cfg.test_split, False)
    model, codec = build_run(cfg)
    check_draw(cfg, codec)
    model.to(device)
    loss_fn = build_loss(cfg.resolved_loss, **cfg.loss_args, **model.loss_modules)
    optimizer = build_optimizer(cfg, model)
    steps_per_epoch = max(1, len(train_set) // (min(cfg.batch_size, len(train_set)) * world))
    scheduler = lr_schedule(cfg, optimizer, steps_per_epoch)

    start_epoch, elapsed = 0, 0.0
    if cfg.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if state["config"] != cfg.identity():
            raise CheckpointError(f"{ckpt_path} belongs to a run with another config; use another name or "
                                  f"out_dir, or delete the run folder {folder.path}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, elapsed = state["epoch"], state.get("elapsed", 0.0)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if world > 1 else model

    epochs = cfg.epochs if not cfg.max_steps else min(cfg.epochs, -(-cfg.max_steps // steps_per_epoch))
    for epoch in range(start_epoch, epochs):
        tick = time.perf_counter()
        loss, steps = train_one_epoch(cfg, net, codec, loss_fn, optimizer, scheduler, train_set, epoch, device,
                                      rank, world)
        seconds = time.perf_counter() - tick
        elapsed += seconds
        log = {"epoch": epoch + 1, "loss": loss, "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
               "images_per_s": steps * cfg.batch_size * world / seconds}
        if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 and rank == 0:
            log["eval"] = evaluate_model(model, codec, Subset(test_set, range(min(cfg.eval_samples, len(test_set)))),
                                         device, **{**cfg.eval_options, "flip_test": False})["summary"]["all"]
        if rank == 0:
            save_checkpoint(ckpt_path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), epoch=epoch + 1, elapsed=elapsed,
                            config=cfg.identity())
            with open(folder.metrics, "a") as f:
                f.write(json.dumps(log) + "\n")
    if world > 1:
        dist.barrier()  # every rank has finished its epochs; rank 0 evaluates and writes the results
    if rank != 0:
        return {}
    evaluation = evaluate_model(model, codec, test_set, device, **cfg.eval_options)
    results = {
        "config": dataclasses.asdict(cfg),
        "key": cfg.key(),
        "code": code_fingerprint(),
        "summary": evaluation["summary"],
        "params": count_params(model),
        "macs": _macs(cfg, model),
        "train_seconds": elapsed,
        "provenance": provenance(device, world_size=world, dataset_samples={"train": len(train_set),
                                                                            "test": len(test_set)}),
    }
    with atomic_path(folder.predictions) as tmp:
        torch.save(evaluation["predictions"], tmp)
    write_json_atomic(folder.results, results)  # last: its presence marks a finished run
    return results


_MACS: dict[tuple, int] = {}


def _macs(cfg: Config, model: KeypointModel) -> int:
    """:func:`~h3r.models.count_flops` of ``model``, counted once per architecture and input size
    in a process: a count traces the whole network. The architecture is its parameters' shapes
    (which also tell the head's size, e.g. SimCC's bins) and the heatmap stride."""
    key = (type(model.backbone).__name__, type(model.head).__name__, model.heatmap_stride, cfg.input_size,
           tuple((name, tuple(p.shape)) for name, p in model.named_parameters()))
    if key not in _MACS:
        _MACS[key] = count_flops(model, cfg.input_size)
    return _MACS[key]


def _loader(cfg: Config, dataset: Dataset, sampler, shuffle_seed: int | None, device: torch.device) -> DataLoader:
    # a dataset smaller than one batch (a tiny fixture) trains on one batch of all of it
    return DataLoader(dataset, batch_size=min(cfg.batch_size, len(dataset)), sampler=sampler, num_workers=cfg.workers,
                      pin_memory=device.type == "cuda", drop_last=shuffle_seed is not None,
                      persistent_workers=False)


def _cached_batches(dataset: Dataset, sampler, batch_size: int):
    """The full batches of ``sampler``'s order, each collated in one piece from the render cache
    (:meth:`h3r.data.synthetic.SyntheticDataset.cached_batch`): the same samples in the same order
    as the DataLoader gives, without worker processes or per-sample conversions."""
    order = torch.tensor(list(sampler))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        yield dataset.cached_batch(order[start:start + batch_size])


def train_one_epoch(cfg, net, codec, loss_fn, optimizer, scheduler, dataset, epoch, device, rank,
                    world) -> tuple[float, int]:
    """One epoch (at most up to ``cfg.max_steps`` in all); returns the mean loss and the steps taken."""
    net.train()
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)  # augmentation draws depend on (seed, epoch, index)
    if getattr(dataset, "cache_dir", None) is not None:
        dataset.ensure_cached(workers=cfg.workers, progress=cfg.progress and rank == 0)
    if world > 1:
        sampler = DistributedSampler(dataset, seed=cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(epoch_seed(cfg, epoch, 0)))
    if cfg.workers == 0 and getattr(dataset, "cache_dir", None) is not None:
        loader = _cached_batches(dataset, sampler, min(cfg.batch_size, len(dataset)))
    else:
        loader = _loader(cfg, dataset, sampler, epoch_seed(cfg, epoch, 0), device)
    rounding = torch.Generator(device).manual_seed(epoch_seed(cfg, epoch, 1) + rank)
    uniforms = None
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    last_step = cfg.max_steps - epoch * (len(dataset) // (min(cfg.batch_size, len(dataset)) * world)) \
        if cfg.max_steps else None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda")
    total, count = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress or rank != 0,
               leave=False, dynamic_ncols=True)
    for batch in bar:
        if last_step is not None and count >= last_step:
            break
        images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=memory_format)
        keypoints = batch["keypoints"].to(device, non_blocking=True)
        if cfg.draw == "fixed":
            if uniforms is None:
                uniforms = fixed_uniforms(cfg, len(dataset), keypoints.shape[1], device)
            draw = dict(uniforms=uniforms[batch["index"].to(device)])
        else:
            draw = dict(generator=rounding)
        target = codec.encode(keypoints, batch["visible"].to(device), **draw)
        with autocast:
            output = net(images)
        loss = loss_fn(to_float(output), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total, count = total + loss.item(), count + 1
        bar.set_postfix(loss=f"{total / count:.4f}")
    if count == 0:
        raise ValueError(f"the training set has {len(dataset)} samples, fewer than one batch of {cfg.batch_size}")
    return total / count, count
