"""The ``h3r`` command: ``h3r train`` and ``h3r eval`` over the functions the notebooks call.

    h3r train --codec h3r --heatmap-stride 8 --epochs 20            # embedded synthetic faces
    h3r train --dataset wflw --data-root /data --backbone hrnet_w18 --input-size 256 --device cuda
    torchrun --nproc-per-node 4 -m h3r.cli train --dataset wflw ...  # several GPUs (DDP)
    h3r eval --run runs/<name>                                       # re-evaluate a finished run
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from h3r.train import Config


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                                help=f"(default: {default})")
        elif isinstance(default, (list, dict)):
            parser.add_argument(flag, type=json.loads, default=default, metavar="JSON",
                                help=f"JSON (default: {json.dumps(default)})")
        elif hint in (int, float):
            parser.add_argument(flag, type=hint, default=default, help=f"(default: {default})")
        else:
            parser.add_argument(flag, type=str, default=default, help=f"(default: {default})")


def _config(args: argparse.Namespace) -> Config:
    return Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Config)})


def cmd_train(args: argparse.Namespace) -> int:
    from h3r.train import run

    cfg = _config(args)
    results = run(cfg, force=args.force)
    if not results:  # a non-zero DDP rank
        return 0
    print(json.dumps({"run": str(cfg.run_dir()), "cached": results["cached"], **results["summary"]["all"]}, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from h3r import train as T
    from h3r.models import build_model
    from h3r.provenance import pick_device, write_json_atomic, provenance

    run_dir = Path(args.run)
    saved = run_dir / "checkpoint.pt"
    if not saved.is_file():
        raise FileNotFoundError(f"no checkpoint at {saved}: give the folder of a run started by `h3r train`")
    state = T.load_checkpoint(saved)
    cfg = Config.from_dict({**state["config"], "device": args.device, "progress": args.progress})
    if args.flip_test is not None:
        cfg.flip_test = args.flip_test
    device = pick_device(cfg.device)
    dataset = T.build_data(cfg, args.split or cfg.test_split, train=False)
    model = build_model(cfg.backbone, dataset.layout.num_keypoints, head=cfg.head,
                        heatmap_stride=cfg.heatmap_stride, width_mult=cfg.width_mult)
    model.load_state_dict(state["model"])
    model.to(device)
    evaluation = T.evaluate(cfg, model, T.build_codec_for(cfg), dataset, device)
    out = {"run": str(run_dir), "split": args.split or cfg.test_split, "epoch": state["epoch"],
           "summary": evaluation["summary"], "provenance": provenance(device)}
    if args.json:
        write_json_atomic(args.json, out)
    print(json.dumps(out["summary"], indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="h3r", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train and evaluate a model (every field of h3r.train.Config)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_config_arguments(t)
    t.add_argument("--force", action="store_true", help="retrain even if this config already has results")
    e = sub.add_parser("eval", help="evaluate a trained run's checkpoint")
    e.add_argument("--run", required=True, help="the run folder (holds checkpoint.pt)")
    e.add_argument("--split", default=None, help="dataset split (default: the run's test split)")
    e.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None)
    e.add_argument("--device", default="auto")
    e.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    e.add_argument("--json", type=Path, help="also write the results here (atomically)")
    args = parser.parse_args(argv)
    try:
        return {"train": cmd_train, "eval": cmd_eval}[args.command](args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"h3r {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
