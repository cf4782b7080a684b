"""The ``h3r`` command: ``h3r train`` and ``h3r eval`` over the functions the notebooks call.

    h3r train --preset h3r --heatmap-stride 8 --epochs 20           # embedded synthetic faces
    h3r train --dataset wflw --data-root /data --backbone hrnet_w18 --input-size 256 --device cuda
    torchrun --nproc-per-node 4 -m h3r train --dataset wflw ...      # several GPUs (DDP)
    h3r eval --run runs/<name>                                       # re-evaluate a finished run
    h3r eval --weights official:models/wflw/hrnet18_256x256_p1 --dataset wflw --protocol official
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
import typing
from pathlib import Path

from h3r.config import RENAMED_FIELDS, Config
from h3r.data.annotated import CROP_PROTOCOLS
from h3r.data.faces import FACE_NORMALIZERS
from h3r.models.official import OFFICIAL_ARCHS
from h3r.protocols import official_benchmarks


def _field_comments() -> dict[str, str]:
    """The comment beside each field of :class:`Config` in its source: the option's help."""
    comments = {}
    for line in inspect.getsource(Config).splitlines():
        match = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.+)$", line)
        if match:
            comments[match.group(1)] = match.group(2)
    return comments


#: a field's flags from before its rename (:data:`h3r.config.RENAMED_FIELDS`), still accepted
RENAMED_FLAGS = {new: ["--" + old.replace("_", "-")] for old, new in RENAMED_FIELDS.items()}


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    hints, comments = typing.get_type_hints(Config), _field_comments()
    for f in dataclasses.fields(Config):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flags = ["--" + f.name.replace("_", "-"), *RENAMED_FLAGS.get(f.name, [])]
        hint = hints[f.name]
        text = comments.get(f.name, "")
        if hint is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{text} (default: {default})".strip())
        elif isinstance(default, (list, dict)):
            parser.add_argument(*flags, type=json.loads, default=default, metavar="JSON",
                                help=f"{text} (JSON; default: {json.dumps(default)})".strip())
        else:
            parser.add_argument(*flags, type=hint if hint in (int, float) else str, default=default,
                                help=f"{text} (default: {default})".strip())


def train_options() -> list[dict]:
    """Every option of ``h3r train``, one per :class:`Config` field, in field order: ``flag``,
    ``type``, ``default`` and ``runtime`` (``"runtime"`` for a field that leaves the run's
    identity alone, :data:`Config.RUNTIME_FIELDS`, else ``""``)."""
    hints = typing.get_type_hints(Config)
    return [{"flag": "--" + f.name.replace("_", "-"),
             "type": getattr(hints[f.name], "__name__", str(hints[f.name])),
             "default": f.default if f.default is not dataclasses.MISSING else f.default_factory(),
             "runtime": "runtime" if f.name in Config.RUNTIME_FIELDS else ""}
            for f in dataclasses.fields(Config)]


def presets_help() -> str:
    """The codec presets ``--preset`` takes, one line each with what it trains with, as ``timm``
    lists its models."""
    from h3r.config import PRESETS

    width = max(map(len, PRESETS))
    lines = [f"  {name:<{width}}  {p.codec}({', '.join(f'{k}={v}' for k, v in p.args.items())}), loss {p.loss}, "
             f"head {p.head}" + (", Gaussian (its sigma: --codec-args)" if p.sigma else "")
             for name, p in PRESETS.items()]
    return "codec presets (--preset NAME):\n" + "\n".join(lines)


def _config(args: argparse.Namespace) -> Config:
    return Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Config)})


def cmd_train(args: argparse.Namespace) -> int:
    from h3r.runs import run

    cfg = _config(args)
    results = run(cfg, force=args.force)
    if not results:  # a non-zero DDP rank
        return 0
    print(json.dumps({"run": str(cfg.run_dir()), "cached": results["cached"], **results["summary"]["all"]}, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from h3r.evaluation import evaluate_official
    from h3r.provenance import write_json_atomic
    from h3r.runs import evaluate_run

    if args.run is not None:
        misplaced = [f"--{k.replace('_', '-')}" for k in WEIGHTS_ONLY if getattr(args, k) is not None]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} only apply to --weights; a run evaluates with its own "
                             "config (see its results.json)")
        out = evaluate_run(args.run, protocol=args.protocol or "ours", split=args.split, flip_test=args.flip_test,
                           device=args.device, progress=args.progress)
    else:
        if not args.weights.startswith("official:"):
            raise ValueError(f"--weights {args.weights!r}: write official:PATH for an official H3R model.pth "
                             "(or its folder); h3r's own checkpoints are evaluated with --run DIR")
        if args.dataset is None:
            raise ValueError("--weights needs --dataset (one of wflw, 300w, lapa, aflw2000)")
        out = evaluate_official(args.weights, arch=args.arch, dataset=args.dataset, data_root=args.data_root,
                                split=args.split, input_size=args.input_size, box=args.box,
                                flip_test=args.flip_test, device=args.device, protocol=args.protocol or "official",
                                normalizer=args.normalizer, batch_size=args.batch_size, progress=args.progress)
    out.pop("predictions")
    if args.json:
        write_json_atomic(args.json, out)
    print(json.dumps({k: out[k] for k in ("protocol", "dataset", "split", "samples", "summary")}, indent=2))
    return 0


EVAL_HELP = """Evaluate a model on a test set and print NME, FR@0.1 and AUC@0.1 overall and per subset
(WFLW's six attributes, 300W full's common/challenging, AFLW2000-3D's yaw bins).

  h3r eval --run runs/<name>                                   # an h3r run, its own protocol
  h3r eval --run runs/<name> --protocol official               # ... cut as the official scripts cut
  h3r eval --weights official:models/wflw/hrnet18_256x256_p1 --dataset wflw --data-root /data
  h3r eval --weights official:model.pth --arch mobilenet_v2 --dataset lapa --box P2 --input-size 128

Official weights (--weights official:PATH, the authors' torchalign model.pth or its folder) are
converted onto h3r's HRNet-W18/MobileNetV2 and decoded as torchalign decodes them (softmax over the
top-9 foreground logits, index x stride 4). --protocol official (their default) reproduces
examples/test_*.py: crop window 1.25 x max(w, h) around the box (P1: the ground-truth landmarks'
tight box, which uses the answer at test time and is not deployable; P2: the dataset's box), PIL
crop + bilinear resize, ImageNet mean/std, flip test averaging coordinates, the official inverse
mapping. --protocol ours cuts the same faces with h3r's exact crop. --arch, --box, --input-size and
the flip test default to the config.yaml beside model.pth, else to torchalign/cfg.py's defaults
(256, P1, flip; the backbone is then guessed from the weights).
"""
WEIGHTS_ONLY = ("arch", "dataset", "data_root", "input_size", "box", "normalizer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="h3r", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train and evaluate a model (every field of h3r.config.Config)",
                       epilog=presets_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config_arguments(t)
    t.add_argument("--force", action="store_true", help="retrain even if this config already has results")
    e = sub.add_parser("eval", help="evaluate an h3r run or official H3R weights", description=EVAL_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="the folder of an h3r run (holds checkpoint.pt)")
    which.add_argument("--weights", metavar="official:PATH",
                       help="an official torchalign model.pth, or the folder holding it and its config.yaml")
    e.add_argument("--protocol", choices=CROP_PROTOCOLS, default=None,
                   help="official: the official test scripts' crop and mapping; ours: h3r's exact crop "
                        "(default: official for --weights, ours for --run)")
    e.add_argument("--dataset", choices=sorted(official_benchmarks()), help="--weights: the benchmark")
    e.add_argument("--data-root", help="--weights: folder holding <dataset>/ (default: $H3R_DATA_ROOT, else ./data)")
    e.add_argument("--arch", choices=sorted(OFFICIAL_ARCHS), help="--weights: backbone (default: config.yaml's "
                   "BACKBONE.ARCH, else guessed from the weights)")
    e.add_argument("--box", choices=("P1", "P2"), help="--weights: P1 = ground-truth landmark box (not "
                   "deployable), P2 = the dataset's box (default: config.yaml's INPUT.BBOX, else P1)")
    e.add_argument("--input-size", type=int, help="--weights: square input side (default: config.yaml's "
                   "INPUT.SIZE, else 256)")
    e.add_argument("--normalizer", choices=FACE_NORMALIZERS, help="--weights: NME normaliser (default: the "
                   "official script's; e.g. inter_pupil for LaPa's pupils 104/105)")
    e.add_argument("--split", default=None, help="dataset split (default: the run's test split; for --weights "
                   + ", ".join(f"{k}: {v}" for k, v in official_benchmarks().items()) + ")")
    e.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None,
                   help="average with the mirrored image (default: the run's setting / config.yaml's INPUT.FLIP)")
    e.add_argument("--batch-size", type=int, default=32, help="--weights: images per forward pass (default: 32)")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (default: auto)")
    e.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    e.add_argument("--json", type=Path, help="also write the results, settings and provenance here (atomically)")
    args = parser.parse_args(argv)
    try:
        return {"train": cmd_train, "eval": cmd_eval}[args.command](args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"h3r {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
