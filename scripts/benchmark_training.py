"""Training throughput (images/s): of a network alone, or of the whole training loop.

    python scripts/benchmark_training.py --backbone hrnet_w18 --input 256 --device cuda
    python scripts/benchmark_training.py --backbone plain_cnn --input 64 --batch 16 --threads 1
    python scripts/benchmark_training.py --loop cpu --threads 1      # the cpu profile's loop

Without ``--loop``: full training steps (forward, H3R spatial cross-entropy, backward, Adam) on
random images and randomized-rounding targets, so data loading is excluded: the model's ceiling;
fp32 and channels_last, and on CUDA bf16 autocast too. Reports the median over ``--steps`` timed
steps after ``--warmup``.

With ``--loop PROFILE``: ``h3r.train`` itself, on the profile's training setup (the embedded
benchmark; ``--backbone``, ``--batch``, ``--threads``, ``--workers`` override it) for two epochs,
renders cached beforehand; reports the images/s of the second epoch, data and encoding included.

``--json`` writes the results with their provenance.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from h3r.codecs import build_codec
from h3r.losses import build_loss
from h3r.models import build_model
from h3r.provenance import pick_device, provenance, write_json_atomic


def steps_per_second(model, codec, loss_fn, images, keypoints, amp: bool, channels_last: bool, steps: int,
                     warmup: int) -> float:
    device = images.device
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    generator = torch.Generator(device).manual_seed(0)
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        target = codec.encode(keypoints, generator=generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            output = model(images)
        loss = loss_fn(output.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - tick)
    return 1.0 / statistics.median(times)


def loop_images_per_second(profile: str, overrides: dict) -> dict:
    """images/s of the second epoch of ``h3r.train`` on ``profile``'s setup with ``overrides``; the
    profile's render cache is reused (and filled where it lacks the two epochs), the run is deleted."""
    import dataclasses
    import json
    import os
    import shutil

    from h3r.profiles import BASE
    from h3r.runs import run
    from h3r.train import build_data

    cfg = dataclasses.replace(BASE[profile], epochs=2, eval_every=0, name=f".benchmark-loop-{os.getpid()}",
                              **{k: v for k, v in overrides.items() if v is not None})
    try:
        for epoch in range(cfg.epochs):  # rendered before the clock starts
            data = build_data(cfg, cfg.train_split, True)
            data.set_epoch(epoch)
            if getattr(data, "cache_dir", None) is not None:
                data.ensure_cached()
        run(cfg)
        log = [json.loads(line) for line in (cfg.run_dir() / "metrics.jsonl").read_text().splitlines()]
    finally:
        shutil.rmtree(cfg.run_dir(), ignore_errors=True)
    return {"profile": profile, "backbone": f"{cfg.backbone} x{cfg.width_mult:g}", "batch": cfg.batch_size,
            "threads": cfg.threads, "workers": cfg.workers, "channels_last": cfg.channels_last,
            "images_per_s": log[-1]["images_per_s"]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--loop", metavar="PROFILE", help="time h3r.train's loop on this profile's setup")
    parser.add_argument("--backbone", default=None, help="network (default: hrnet_w18, or the profile's)")
    parser.add_argument("--width-mult", type=float, default=1.0)
    parser.add_argument("--input", type=int, default=256, help="input side in pixels")
    parser.add_argument("--keypoints", type=int, default=98)
    parser.add_argument("--batch", type=int, default=None, help="images per step (default: 32, or the profile's)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, or the profile's)")
    parser.add_argument("--workers", type=int, default=None, help="--loop: DataLoader workers (default: the profile's)")
    parser.add_argument("--max-steps", type=int, default=None, help="--loop: cap on optimizer steps (0: none)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="write the results here (atomically)")
    args = parser.parse_args(argv)
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    if args.loop:
        network = dict(backbone=args.backbone, width_mult=args.width_mult) if args.backbone else {}
        row = loop_images_per_second(args.loop, dict(**network, batch_size=args.batch, threads=args.threads,
                                                     workers=args.workers, max_steps=args.max_steps))
        print(f"{row['backbone']}, batch {row['batch']}, {row['threads'] or 'default'} threads: "
              f"{row['images_per_s']:.1f} images/s in the training loop")
        result = {"results": [row], "settings": settings, "provenance": provenance("cpu")}
        if args.json:
            write_json_atomic(args.json, result)
        return result
    if args.threads:
        torch.set_num_threads(args.threads)
    args.backbone, args.batch = args.backbone or "hrnet_w18", args.batch or 32
    device = pick_device(args.device)
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, args.input, args.input, device=device)
    keypoints = torch.rand(args.batch, args.keypoints, 2, device=device) * (args.input - 8) + 4
    codec = build_codec("h3r", args.input, stride=4)
    formats = [(False, False), (False, True)] + ([(True, False), (True, True)] if device.type == "cuda" else [])
    rows = []
    for amp, channels_last in formats:
        model = build_model(args.backbone, args.keypoints, width_mult=args.width_mult).to(device).train()
        rate = steps_per_second(model, codec, build_loss("spatial_ce"), images, keypoints, amp, channels_last,
                                args.steps, args.warmup)
        rows.append({"bf16": amp, "channels_last": channels_last, "images_per_s": rate * args.batch})
        print(f"bf16={amp!s:5} channels_last={channels_last!s:5}  {rate * args.batch:9.1f} images/s")
    result = {"results": rows, "settings": settings, "provenance": provenance(device)}
    if args.json:
        write_json_atomic(args.json, result)
    return result


if __name__ == "__main__":
    main()
