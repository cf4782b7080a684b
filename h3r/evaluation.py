"""Evaluating a model on a test set: predictions in original pixels, the benchmark's metrics.

:func:`predict` runs a model over a dataset and maps every prediction back to the original image;
:func:`evaluate_model` adds NME, FR@0.1 and AUC@0.1 overall and per test subset. Every evaluation
of the study goes through them: the end of a training run (:mod:`h3r.train`), the re-evaluation of
a finished one with another decoder or split (:mod:`h3r.runs`), and the authors' released weights
under the official protocol (:func:`evaluate_official`)::

    result = evaluate_official("models/wflw/hrnet18_256x256_p1", dataset="wflw", data_root="/data")
    result["summary"]["all"]["NME (%)"]

The decoder belongs to the model, not to the protocol: official weights are decoded as torchalign
decodes them (``build_codec("h3r-official")``: softmax over the top-9 foreground logits, index
times stride 4, no half-pixel offset); an h3r run with its own codec. How a face is cut out
(``protocol="official"`` or ``"ours"``) is the data's (:mod:`h3r.data.transforms`).
"""
from __future__ import annotations

from h3r._extras import require

require("train", "h3r.evaluation")

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from h3r import metrics
from h3r.codecs import Codec, build_codec
from h3r.geometry import apply_affine, flip_keypoints, invert_affine
from h3r.models import binary_scores, count_params, to_float
from h3r.provenance import pick_device, provenance

#: per-sample ids that predictions carry along when a dataset provides them (COCO's evaluation)
META_KEYS = ("image_id", "ann_id", "area")


def decodable(output, head: str, score_mode: str):
    """The head's output as its codec's :meth:`~h3r.codecs.Codec.decode` reads it, in float32:
    (N, K, Hh, Wh) scores from a heatmap head, and from a binary one (:func:`binary_scores` with
    ``score_mode``); SimCC's pair ``(x_logits, y_logits)``; a regression head's (N, K, 4)."""
    return binary_scores(output, score_mode).float() if head == "binary" else to_float(output)


@torch.inference_mode()
def predict(model: nn.Module, codec: Codec, dataset: Dataset, device: torch.device, batch_size: int = 32,
            flip_test: bool = True, score_mode: str = "foreground", workers: int = 0,
            progress: bool = True) -> dict:
    """Predictions for every sample, in crop and original-image pixels.

    Returns tensors ``pred`` (N, K, 2) in original pixels, ``pred_crop``, ``gt`` (``keypoints_orig``),
    ``visible``, ``normalizer``, ``scores`` (the decoder's peak values), ``subsets`` (dict of (N,)
    bool) and the per-sample ids some protocols need (``image_id``, ``ann_id``, ``area`` for COCO)
    when the dataset has them.
    The flip test averages the coordinates decoded from the image and from its mirror (mapped back
    with the layout's ``flip_index``), as the official H3R code does.
    """
    return predict_decoders(model, [codec], dataset, device, batch_size, flip_test, score_mode, workers,
                            progress)[0]


@torch.inference_mode()
def predict_decoders(model: nn.Module, codecs: Sequence[Codec], dataset: Dataset, device: torch.device,
                     batch_size: int = 32, flip_test: bool = True, score_mode: str = "foreground",
                     workers: int = 0, progress: bool = True) -> list[dict]:
    """:func:`predict` for each of ``codecs`` (decoders of the same heatmap size) from one pass of
    the network: one dict per codec, in their order."""
    from tqdm import tqdm

    model.eval()
    whole = getattr(dataset, "dataset", dataset)  # a Subset's dataset holds the layout
    flip_index = whole.layout.flip_index
    width = whole.input_size[0] if isinstance(whole.input_size, tuple) else whole.input_size
    head = getattr(model, "head_kind", "heatmap")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    shared: dict[str, list] = {k: [] for k in ("gt", "visible", "normalizer")}
    decoded: list[dict[str, list]] = [{k: [] for k in ("pred", "pred_crop", "scores")} for _ in codecs]
    subsets: dict[str, list] = {}
    for batch in tqdm(loader, desc="evaluate", disable=not progress, leave=False, dynamic_ncols=True):
        images = batch["image"].to(device)
        heatmaps = decodable(model(images), head, score_mode)
        mirrored = decodable(model(images.flip(-1)), head, score_mode) if flip_test else None
        inverse = invert_affine(batch["affine"].double())
        for codec, out in zip(codecs, decoded):
            coords, scores = codec.decode(heatmaps)
            if flip_test:
                coords = (coords + flip_keypoints(codec.decode(mirrored)[0], width, flip_index)) / 2
            coords = coords.cpu().double()
            out["pred_crop"].append(coords.float())
            out["pred"].append(apply_affine(coords, inverse).float())
            out["scores"].append(scores.cpu().float())
        shared["gt"].append(batch["keypoints_orig"].float())
        shared["visible"].append(batch["visible"].float())
        shared["normalizer"].append(batch["normalizer"].float())
        for name, flags in batch.get("subsets", {}).items():
            subsets.setdefault(name, []).append(flags.bool())
        for name in META_KEYS:
            if name in batch:
                shared.setdefault(name, []).append(torch.as_tensor(batch[name]))
    common = {k: torch.cat(v) for k, v in shared.items()}
    common["subsets"] = {k: torch.cat(v) for k, v in subsets.items()}
    return [{**{k: torch.cat(v) for k, v in out.items()}, **common} for out in decoded]


def evaluate_model(model: nn.Module, codec: Codec, dataset: Dataset, device: torch.device, batch_size: int = 32,
                   flip_test: bool = True, score_mode: str = "foreground", progress: bool = True,
                   workers: int = 0) -> dict:
    """NME, FR@0.1 and AUC@0.1 overall and per subset (``summary``), with the ``predictions``
    of :func:`predict` and their per-sample ``nme``."""
    return evaluate_decoders(model, [codec], dataset, device, batch_size, flip_test, score_mode, progress,
                             workers)[0]


def evaluate_decoders(model: nn.Module, codecs: Sequence[Codec], dataset: Dataset, device: torch.device,
                      batch_size: int = 32, flip_test: bool = True, score_mode: str = "foreground",
                      progress: bool = True, workers: int = 0) -> list[dict]:
    """:func:`evaluate_model` for each of ``codecs``, from one pass of the network
    (:func:`predict_decoders`)."""
    if getattr(dataset, "cache_dir", None) is not None:
        dataset.ensure_cached(workers=workers, progress=progress)
    results = []
    for p in predict_decoders(model, codecs, dataset, device, batch_size, flip_test, score_mode, 0, progress):
        nmes = metrics.nme(p["pred"], p["gt"], p["normalizer"], p["visible"])
        results.append({"summary": metrics.summarize(nmes, p["subsets"] or None), "predictions": {**p, "nme": nmes}})
    return results


# --- the authors' weights ---------------------------------------------------------------------------

def evaluate_official(weights: str | Path, arch: str | None = None, dataset: str = "wflw", data_root=None,
                      split: str | None = None, input_size: int | None = None, box: str | None = None,
                      flip_test: bool | None = None, device: str = "auto", *, protocol: str = "official",
                      normalizer: str | None = None, batch_size: int = 32, progress: bool = True) -> dict:
    """Evaluate an official ``model.pth`` (or its folder) on a benchmark, as the official script does.

    ``arch``, ``input_size``, ``box`` and ``flip_test`` default to the model's ``config.yaml`` (else
    torchalign's defaults; the architecture is then guessed from the weights). ``split`` defaults to
    the benchmark's ``official_split`` (:data:`h3r.protocols.PROTOCOLS`). ``protocol="ours"`` cuts
    the faces with h3r's exact crop instead (same decoder). Returns a JSON-ready dict (``summary``:
    NME, FR, AUC overall and per subset; ``settings`` and ``settings_source``; ``samples``;
    ``dataset_counts``; ``provenance``) plus ``predictions`` (tensors, per sample).
    """
    from h3r.data.registry import build_dataset
    from h3r.models.official import OFFICIAL_STRIDE, load_official
    from h3r.protocols import official_benchmarks
    from h3r.zoo import official_settings, resolve_weights

    official = official_benchmarks()
    if dataset not in official:
        raise ValueError(f"official weights are evaluated on {sorted(official)}, not {dataset!r}")
    model_file, config = resolve_weights(weights)
    settings = official_settings(model_file, config, arch=arch, input_size=input_size, box=box,
                                 flip_test=flip_test)
    split = split or official[dataset]
    kwargs = {"normalizer": normalizer} if normalizer is not None else {}
    data = build_dataset(dataset, split, data_root=data_root, input_size=settings.input_size, box=settings.box,
                         padding=settings.padding, protocol=protocol, **kwargs)
    layout = data.layout
    model = load_official(model_file, settings.arch)
    if model.num_keypoints != layout.num_keypoints:
        raise ValueError(f"{model_file} predicts {model.num_keypoints} keypoints but {dataset} has "
                         f"{layout.num_keypoints} ({layout.name}): these weights were trained on another dataset "
                         "(official models: wflw 98 points, lapa 106, 300w and 300wlp 68)")
    if settings.flip_order is not None and settings.flip_order != layout.flip_index:
        raise ValueError(f"{config}: INPUT.FLIP_ORDER differs from the flip order of {dataset} ({layout.name}), "
                         "which the flip test uses; these weights were trained for another keypoint order")
    dev = pick_device(device)
    codec = build_codec("h3r-official", settings.input_size, stride=OFFICIAL_STRIDE, k=settings.topk)
    evaluation = evaluate_model(model.to(dev), codec, data, dev, batch_size, settings.flip_test, "foreground",
                                progress)
    return {
        "protocol": protocol,
        "weights": str(model_file),
        "dataset": dataset,
        "split": split,
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k not in ("flip_order", "source")},
        "settings_source": settings.source,
        "decoder": f"h3r-official: softmax over the top-{settings.topk} foreground logits, index x stride "
                   f"{OFFICIAL_STRIDE} (align='corner')",
        "normalizer": data.normalizer,
        "samples": len(data),
        "params": count_params(model),
        "summary": evaluation["summary"],
        "dataset_counts": data.summary(),
        "provenance": provenance(dev),
        "predictions": evaluation["predictions"],
    }


# --- COCO: keypoint AP of top-down predictions -----------------------------------------------------

def coco_results(predictions: dict) -> list[dict]:
    """pycocotools result entries from :func:`predict` output on :class:`~h3r.data.pose.COCOKeypoints`:
    one per ground-truth person, keypoints in original-image pixels, each keypoint's confidence the
    decoder's peak value and the instance score their mean (HRNet's top-down convention, without
    its detector-box rescoring, since the boxes are ground truth)."""
    if "image_id" not in predictions:
        raise ValueError("these predictions carry no image_id: COCO AP needs predictions of a COCO dataset")
    pred, scores = predictions["pred"].double(), predictions["scores"].double()
    keypoints = torch.cat([pred, scores[..., None]], dim=-1).flatten(1)
    return [{"image_id": int(i), "category_id": 1, "keypoints": k.tolist(), "score": float(s.mean())}
            for i, k, s in zip(predictions["image_id"], keypoints, scores)]


def coco_ap(predictions: dict, annotation_file: str | Path) -> dict:
    """COCO keypoint AP (pycocotools) of predictions of a COCO test split against its annotation file."""
    import json

    with open(annotation_file) as f:
        ground_truth = json.load(f)
    return metrics.coco_keypoint_ap(coco_results(predictions), ground_truth)


def official_nme(dataset: str, backbone: str, box: str, input_size: int, weights_dir: str = "",
                 data_root: str = "", results_dir: str = "", evaluate: bool = False, device="auto") -> dict:
    """The NME of h3r on one official README model (README names: ``"WFLW"``, ``"HRNet-W18"``,
    ``"P1"``, 256), and how it was had.

    Read from ``<results_dir>/<model folder>.json`` (the ``h3r eval --json`` output) when that
    file exists for this box and input size; else evaluated here (and written there) when
    ``evaluate`` is on and both the weights under ``weights_dir`` and the test set under
    ``data_root`` are present; else NaN, with what is missing. Returns ``"NME h3r (%)"``,
    ``"test set"``, ``"status"`` and the ``"command"`` that fills the row, in which a folder not
    given is spelled ``WEIGHTS_DIR``, ``DATA_ROOT`` or ``runs/official``.
    """
    import json
    import math

    from h3r.data.annotated import resolve_data_root
    from h3r.protocols import official_benchmarks
    from h3r.provenance import write_json_atomic
    from h3r.zoo import README_DATASETS, official_model_folder

    name = README_DATASETS[dataset][0]
    folder = official_model_folder(dataset, backbone, box, input_size)
    weights = Path(weights_dir or "WEIGHTS_DIR") / folder
    result = Path(results_dir or "runs/official") / f"{folder.removeprefix('models/')}.json"
    command = (f"h3r eval --weights official:{weights} --dataset {name} --data-root {data_root or 'DATA_ROOT'} "
               f"--protocol official --json {result}")
    out = {"NME h3r (%)": math.nan, "test set": f"{name}/{official_benchmarks()[name]}", "status": "",
           "command": command}
    if results_dir and result.is_file():
        saved = json.loads(result.read_text())
        settings = saved.get("settings", {})
        if (saved.get("protocol"), settings.get("box"), settings.get("input_size")) != ("official", box, input_size):
            return {**out, "status": f"{result} is for another setting; run the command again"}
        return {**out, "NME h3r (%)": saved["summary"]["all"]["NME (%)"], "status": f"from {result}",
                "test set": f"{name}/{saved['split']} ({saved['samples']} faces)"}
    missing = [what for what, present in (
        ("weights", weights_dir and (weights / "model.pth").is_file()),
        ("data", data_root and (resolve_data_root(data_root) / name).is_dir())) if not present]
    if missing:
        return {**out, "status": f"needs {' and '.join(missing)}"}
    if not evaluate:
        return {**out, "status": "ready: run the command, or evaluate=True"}
    evaluation = evaluate_official(weights, dataset=name, data_root=data_root, device=device, progress=False)
    evaluation.pop("predictions")
    if results_dir:
        write_json_atomic(result, evaluation)
    return {**out, "NME h3r (%)": evaluation["summary"]["all"]["NME (%)"], "status": "evaluated here",
            "test set": f"{name}/{evaluation['split']} ({evaluation['samples']} faces)"}


def official_mapping_gap(side: float, size: int, boxes: int = 64, seed: int = 0) -> dict:
    """How far the official mapping back (``x = u wh / S + rect[0]``) is from the true mapping of
    the crop PIL renders, along x, over every pixel of an ``size``-pixel crop of square faces of
    ``side`` pixels at ``boxes`` random sub-pixel positions: the mean gap (px), its prediction
    ``(1 - wh/S) / 2``, and the largest gap in pixels and in percent of the box side."""
    import numpy as np

    from h3r.data.transforms import official_crop

    rng = np.random.default_rng(seed)
    u = torch.stack([torch.arange(size, dtype=torch.float64), torch.zeros(size, dtype=torch.float64)], -1)
    gaps = []
    for x1, y1 in rng.uniform(300, 301, size=(boxes, 2)):
        render, mapping = official_crop([x1, y1, x1 + side - 1, y1 + side - 1], (size, size))
        gaps.append((apply_affine(u, invert_affine(mapping)) - apply_affine(u, invert_affine(render)))[:, 0])
    gaps = torch.cat(gaps)
    wh = 1.25 * side
    return {"box side (px)": side, "input": size, "window wh (px)": wh, "(1 - wh/S) / 2 (px)": (1 - wh / size) / 2,
            "mean gap (px)": gaps.mean().item(), "max |gap| (px)": gaps.abs().max().item(),
            "max |gap| / side (%)": 100 * gaps.abs().max().item() / side}
