"""Training throughput (images/s) of a network, with and without bf16 autocast and channels_last.

    python scripts/benchmark_training.py --backbone hrnet_w18 --input 256 --device cuda
    python scripts/benchmark_training.py --backbone mobilenet_v2 --width-mult 0.5 --input 64 --batch 32

Measures full training steps (forward, H3R spatial cross-entropy, backward, Adam) on random images
and randomized-rounding targets, so data loading is excluded: it is the model's ceiling. bf16 and
channels_last are CUDA settings (``h3r.train`` uses them there); on the CPU only fp32 is measured.
Reports the median over ``--steps`` timed steps after ``--warmup``, and writes JSON with
provenance when ``--json`` is given.
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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backbone", default="hrnet_w18")
    parser.add_argument("--width-mult", type=float, default=1.0)
    parser.add_argument("--input", type=int, default=256, help="input side in pixels")
    parser.add_argument("--keypoints", type=int, default=98)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="write the results here (atomically)")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(0)
    images = torch.randn(args.batch, 3, args.input, args.input, device=device)
    keypoints = torch.rand(args.batch, args.keypoints, 2, device=device) * (args.input - 8) + 4
    codec = build_codec("h3r", args.input, stride=4)
    settings = [(False, False)] + ([(True, False), (False, True), (True, True)] if device.type == "cuda" else [])
    rows = []
    for amp, channels_last in settings:
        model = build_model(args.backbone, args.keypoints, width_mult=args.width_mult).to(device).train()
        rate = steps_per_second(model, codec, build_loss("spatial_ce"), images, keypoints, amp, channels_last,
                                args.steps, args.warmup)
        rows.append({"bf16": amp, "channels_last": channels_last, "images_per_s": rate * args.batch})
        print(f"bf16={amp!s:5} channels_last={channels_last!s:5}  {rate * args.batch:9.1f} images/s")
    result = {"results": rows, "settings": {k: v for k, v in vars(args).items() if k != "json"},
              "provenance": provenance(device)}
    if args.json:
        write_json_atomic(args.json, result)
    return result


if __name__ == "__main__":
    main()
