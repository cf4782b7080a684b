"""Encode and decode throughput of every codec preset, next to mmpose's codecs where installed.

    python scripts/benchmark_codecs.py --device cpu --json results/benchmark_codecs.json

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
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
import warnings
from pathlib import Path

import torch

from h3r.codecs import build_codec
from h3r.config import PRESETS
from h3r.provenance import provenance, write_json_atomic

SIGMA = 2.0
#: decoders timed beside the presets: name -> (preset, keyword overrides)
VARIANTS = {"h3r-window": ("h3r", {"select": "window"})}
ARGMAX = ("argmax-floor", "argmax-round")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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


def benchmark(args) -> list[dict]:
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


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = load_average()
    rows = benchmark(args)
    report = {"provenance": benchmark_provenance(args, torch.device(args.device), load_before), "results": rows}
    print_table(rows, report["provenance"])
    if args.json is not None:
        write_json_atomic(args.json, report)
    return report


if __name__ == "__main__":
    main()
