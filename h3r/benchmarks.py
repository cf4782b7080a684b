"""Throughput of the codecs and of training, measured in a process of their own.

    python -m h3r.benchmarks codecs --device cpu --json codecs.json       # encode/decode per second
    python -m h3r.benchmarks training --backbone plain_cnn --input 64     # training images per second

``scripts/benchmark_codecs.py`` and ``scripts/benchmark_training.py`` are these two commands. The
book's chapters call :func:`in_fresh_process`, which runs one in a new Python process so that the
notebook's threads and imports do not enter the timing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from h3r.codecs import build_codec
from h3r.config import PRESETS
from h3r.losses import build_loss
from h3r.models import build_model
from h3r.provenance import pick_device, provenance, write_json_atomic


def in_fresh_process(command: str, **options) -> dict:
    """The JSON record of ``python -m h3r.benchmarks COMMAND --key=value ...`` (``options``; a
    True flag is given bare) run in a new process: ``{"results": [...], "provenance": ...}``."""
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {sorted(COMMANDS)}, got {command!r}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "benchmark.json"
        flags = [f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')}={v}"
                 for k, v in options.items() if v is not None and v is not False]
        done = subprocess.run([sys.executable, "-m", "h3r.benchmarks", command, *flags, f"--json={out}"],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"python -m h3r.benchmarks {command} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        return json.loads(out.read_text())


# --- codecs ---------------------------------------------------------------------------------------

CODECS_DOC = """Encode and decode throughput of every codec preset, next to mmpose's codecs where installed.

    python -m h3r.benchmarks codecs --device cpu --json results/benchmark_codecs.json

Throughput is samples per second (one sample = K keypoints of one image), the median over
``--repeats`` timed runs after ``--warmup`` untimed ones; CUDA work is synchronised inside the
timed region. The decoders take turns (one call of each per round, in a new order every round), so
a change in the machine's load hits all of them alike; so do the encoders, in rounds of their own.
Each decoder is also given as a share of the argmax decode rate (the mean of the ``argmax-floor``
and ``argmax-round`` rows), the floor every heatmap decoder pays for reading its maps once. The
decoders of other heads read what those heads output for the same keypoints (SimCC: per-axis
logits of ``round(input x split ratio)`` bins; RLE: (N, K, 4)), so their share compares unlike
inputs. Besides
the presets, :data:`VARIANTS` are timed too (H3R's window selection). mmpose's codecs take one
instance at a time as numpy arrays, so they are called the way a user calls them: convert the batch
to numpy once, then loop over the samples (both inside the timed region). Its twins:
``argmax-quarter`` = ``MSRAHeatmap(unbiased=False)``, ``dark`` = ``MSRAHeatmap(unbiased=True)``,
``udp`` = ``UDPHeatmap`` (Gaussian), all with sigma 2 and an 11-tap blur.
"""
SIGMA = 2.0
#: decoders timed beside the presets: name -> (preset, keyword overrides)
VARIANTS = {"h3r-window": ("h3r", {"select": "window"})}
ARGMAX = ("argmax-floor", "argmax-round")


def codecs_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m h3r.benchmarks codecs", description=CODECS_DOC.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=CODECS_DOC)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=64, help="samples per call")
    p.add_argument("--keypoints", type=int, default=98, help="keypoints per sample")
    p.add_argument("--heatmap", type=int, default=64, help="heatmap side in cells")
    p.add_argument("--input", type=int, default=256, help="input side in pixels")
    p.add_argument("--repeats", type=int, default=10, help="timed runs (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    p.add_argument("--codecs", nargs="+", default=sorted(PRESETS) + sorted(VARIANTS),
                   choices=sorted(PRESETS) + sorted(VARIANTS))
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-mmpose", action="store_true", help="skip mmpose even if it is installed")
    p.add_argument("--json", type=Path, help="write the results and their provenance here")
    args = p.parse_args(argv)
    if args.input % args.heatmap:
        p.error(f"--input {args.input} is not a multiple of --heatmap {args.heatmap}")
    return args


def median_seconds(fns: dict, device: torch.device, repeats: int, warmup: int) -> dict:
    """Median seconds per call of each function in ``fns`` (name -> callable), called in turns,
    in a new (seeded) order every round: none always runs right after the same one (after one of
    mmpose's per-instance loops, say)."""
    times = {name: [] for name in fns}
    order, shuffle = list(fns), random.Random(0).shuffle
    for run in range(warmup + repeats):
        shuffle(order)
        for name in order:
            fn = fns[name]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if run >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def mmpose_twins(input_size, heatmap_size) -> dict:
    """Preset name -> the mmpose codec of the same method, or {} without mmpose."""
    try:
        from mmpose.codecs import MSRAHeatmap, UDPHeatmap
    except ImportError:
        return {}
    # mmpose 1.3.2 calls np.maximum(a, b, out) positionally, which numpy 2 deprecates
    warnings.filterwarnings("ignore", message="Passing more than 2 positional arguments", category=DeprecationWarning)
    return {
        "argmax-quarter": MSRAHeatmap(input_size, heatmap_size, sigma=SIGMA, unbiased=False),
        "dark": MSRAHeatmap(input_size, heatmap_size, sigma=SIGMA, unbiased=True, blur_kernel_size=11),
        "udp": UDPHeatmap(input_size, heatmap_size, sigma=SIGMA, blur_kernel_size=11),
    }


def benchmark_provenance(args, device: torch.device, load_before: list | None) -> dict:
    """h3r's provenance (commit, device, versions, time) plus what a timing depends on, including
    the machine's load average (1, 5, 15 min) before and after: other work on the CPU shows."""
    try:
        import mmpose
        mmpose_version = mmpose.__version__
    except ImportError:
        mmpose_version = None
    return provenance(device, mmpose=mmpose_version, torch_threads=torch.get_num_threads(),
                      platform=platform.platform(), load_average={"before": load_before, "after": load_average()},
                      args={k: (v.name if isinstance(v, Path) else v) for k, v in vars(args).items()})


def load_average() -> list | None:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def head_output(codec, keypoints: torch.Tensor):
    """What a non-heatmap head outputs for ``keypoints``: SimCC's per-axis logits (its labels plus
    noise), a regression head's (N, K, 4) (the normalised keypoints and sigma logits)."""
    if codec.head == "simcc":
        target = codec.encode(keypoints)
        return tuple(labels + 0.01 * torch.rand_like(labels) for labels in (target.x_labels, target.y_labels))
    uv = codec.to_heatmap(keypoints)
    return torch.cat([uv, torch.zeros_like(uv)], dim=-1)


def codec_rates(args) -> list[dict]:
    device = torch.device(args.device)
    size, hm = (args.input, args.input), (args.heatmap, args.heatmap)
    n, k = args.batch, args.keypoints
    keypoints = torch.rand(n, k, 2, device=device) * (args.input - 1)
    visible = torch.ones(n, k, device=device)
    heatmaps = build_codec("dark", size, heatmap_size=hm).encode(keypoints).heatmaps
    heatmaps = heatmaps + 0.01 * torch.rand_like(heatmaps)
    twins = {} if args.no_mmpose else mmpose_twins(size, hm)
    fns = {}
    for name in args.codecs:
        preset, overrides = VARIANTS.get(name, (name, {}))
        codec = build_codec(preset, size, heatmap_size=hm, **overrides)
        output = heatmaps if codec.head == "heatmap" else head_output(codec, keypoints)
        fns[name, "encode"] = lambda codec=codec: codec.encode(keypoints, visible)
        fns[name, "decode"] = lambda codec=codec, output=output: codec.decode(output)
        twin = twins.get(name)
        if twin is not None:
            def mm_encode(twin=twin):
                kp, vis = keypoints.cpu().numpy(), visible.cpu().numpy()
                return [twin.encode(kp[i:i + 1], vis[i:i + 1]) for i in range(n)]

            def mm_decode(twin=twin):
                maps = heatmaps.cpu().numpy()
                return [twin.decode(maps[i]) for i in range(n)]

            fns[name, "mmpose_encode"], fns[name, "mmpose_decode"] = mm_encode, mm_decode
    rate = {}
    for kind in ("decode", "encode"):  # apart: an encoder's batch-sized targets disturb the next timing
        timed = {key: fn for key, fn in fns.items() if key[1].endswith(kind)}
        rate.update({key: n / t for key, t in median_seconds(timed, device, args.repeats, args.warmup).items()})
    argmax = [rate[name, "decode"] for name in ARGMAX if (name, "decode") in rate]
    argmax = statistics.mean(argmax) if argmax else None
    rows = []
    for name in args.codecs:
        row = {"codec": name, "encode_per_s": rate[name, "encode"], "decode_per_s": rate[name, "decode"],
               "decode_share_of_argmax": None if argmax is None else rate[name, "decode"] / argmax}
        if (name, "mmpose_decode") in rate:
            row["mmpose_encode_per_s"] = rate[name, "mmpose_encode"]
            row["mmpose_decode_per_s"] = rate[name, "mmpose_decode"]
            row["encode_ratio"] = row["encode_per_s"] / row["mmpose_encode_per_s"]
            row["decode_ratio"] = row["decode_per_s"] / row["mmpose_decode_per_s"]
        rows.append(row)
    return rows


def print_table(rows: list[dict], prov: dict) -> None:
    a = prov["args"]
    print(f"{a['batch']} samples x {a['keypoints']} keypoints, heatmap {a['heatmap']}^2, input {a['input']}^2, "
          f"on {prov['device']}, torch {prov['torch']}, mmpose {prov['mmpose']}")
    cols = [("codec", "codec", "{:<18}"), ("encode_per_s", "encode/s", "{:>10.0f}"),
            ("decode_per_s", "decode/s", "{:>10.0f}"), ("decode_share_of_argmax", "of argmax", "{:>9.0%}"),
            ("mmpose_encode_per_s", "mm enc/s", "{:>10.0f}"),
            ("mmpose_decode_per_s", "mm dec/s", "{:>10.0f}"), ("encode_ratio", "enc x", "{:>7.1f}"),
            ("decode_ratio", "dec x", "{:>7.1f}")]
    print("  ".join(f"{title:<18}" if key == "codec" else f"{title:>{len(fmt.format(0))}}"
                    for key, title, fmt in cols))
    for row in rows:
        print("  ".join(fmt.format(row[key]) if row.get(key) is not None else f"{'-':>{len(fmt.format(0))}}"
                        for key, _, fmt in cols))



def codecs_main(argv=None) -> dict:
    """``python -m h3r.benchmarks codecs``: time, print, and write ``--json``; returns the record."""
    args = codecs_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = load_average()
    rows = codec_rates(args)
    report = {"provenance": benchmark_provenance(args, torch.device(args.device), load_before), "results": rows}
    print_table(rows, report["provenance"])
    if args.json is not None:
        write_json_atomic(args.json, report)
    return report



# --- training -------------------------------------------------------------------------------------

TRAINING_DOC = """Training throughput (images/s): of a network alone, or of the whole training loop.

    python -m h3r.benchmarks training --backbone hrnet_w18 --input 256 --device cuda
    python -m h3r.benchmarks training --backbone plain_cnn --input 64 --batch 16 --threads 1
    python -m h3r.benchmarks training --loop cpu --threads 1      # the cpu profile's loop

Without ``--loop``: full training steps (forward, H3R spatial cross-entropy, backward, Adam) on
random images and randomized-rounding targets, so data loading is excluded: the model's ceiling;
fp32 and channels_last, and on CUDA bf16 autocast too. Reports the median over ``--steps`` timed
steps after ``--warmup``.

With ``--loop PROFILE``: ``h3r.train`` itself, on the profile's training setup (the embedded
benchmark; ``--backbone``, ``--batch``, ``--threads``, ``--workers`` override it) for two epochs,
renders cached beforehand; reports the images/s of the second epoch, data and encoding included.

``--json`` writes the results with their provenance.
"""


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



def training_main(argv=None) -> dict:
    """``python -m h3r.benchmarks training``: time, print, and write ``--json``; returns the record."""
    parser = argparse.ArgumentParser(prog="python -m h3r.benchmarks training",
                                     description=TRAINING_DOC.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TRAINING_DOC)
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



COMMANDS = {"codecs": codecs_main, "training": training_main}


def main(argv=None) -> dict:
    """``python -m h3r.benchmarks {codecs,training} ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        raise SystemExit(f"{__doc__}\nusage: python -m h3r.benchmarks {{codecs,training}} [--help]")
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
