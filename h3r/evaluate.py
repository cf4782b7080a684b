"""Evaluation protocols: the official H3R test scripts reproduced, and h3r's own.

Two protocols decide how a face is cut out of its image and how predictions go back:

``"official"``  what ``examples/test_{wflw,300w,lapa,aflw2000}.py`` of baoshengyu/H3R do through
                ``torchalign/api.py``: the window ``rect`` of side ``1.25 max(w, h)`` around the box
                (P1: the tight box of the ground-truth landmarks; P2: the dataset's box), cropped by
                PIL (which rounds ``rect`` to whole pixels) and resized by torchvision's ``Resize``
                (PIL's bilinear filter, which low-passes when it shrinks), ImageNet mean/std, a flip
                test that averages the coordinates of the image and of its mirror
                (``x -> S - 1 - x``, then the flip order), and the inverse ``x = u * wh / S + rect[0]``,
                which ignores the rounding of ``rect`` and the half-pixel offset of the resize.
``"ours"``      h3r's exact crop (:class:`h3r.data.transforms.CropTransform`): ``cv2.warpAffine``
                renders exactly the window the affine map describes, and its inverse maps
                predictions back with no offset.

The decoder belongs to the model, not to the protocol: official weights are decoded as torchalign
decodes them (``build_codec("h3r-official")``: softmax over the top-9 foreground logits, index
times stride 4, no half-pixel offset); an h3r run with its own codec. Landmark conventions and
normalisers are the datasets' own, which follow the official scripts (300W ``.pts`` minus 1,
AFLW2000-3D ``pt3d_68`` minus 1; NME by the outer eye corners 60/72 for WFLW, 36/45 for 300W,
66/79 for LaPa, and sqrt(w h) of the ground-truth landmark box for AFLW2000-3D).

    result = evaluate_official("models/wflw/hrnet18_256x256_p1", dataset="wflw", data_root="/data")
    result["summary"]["all"]["NME (%)"]

The official ``model.pth`` files sit beside a ``config.yaml`` (``INPUT.SIZE``, ``INPUT.BBOX``,
``INPUT.SCALE``, ``INPUT.FLIP``, ``INPUT.FLIP_ORDER``, ``BACKBONE.ARCH``, ``HEATMAP.TOPK``, ...);
:func:`official_settings` reads it as torchalign does, falling back to ``torchalign/cfg.py``'s
defaults, and explicit arguments override both.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from h3r import train as T
from h3r.data.registry import DATASETS, build_dataset
from h3r.data.transforms import PADDING, Crop, CropTransform, official_crop
from h3r.geometry import apply_affine
from h3r.models import build_model, count_params
from h3r.models.backbones import read_state_dict
from h3r.models.official import OFFICIAL_ARCHS, guess_official_arch, load_official
from h3r.provenance import pick_device, provenance

PROTOCOLS = ("official", "ours")
#: the benchmarks of the official README -> the split its test script reads by default. 300W's
#: official list (data/F300W/test.txt) is not published; "full" (689 faces) carries the common
#: and challenging subsets, ``split="test"`` is the 600-face private set.
OFFICIAL_SPLITS = {"wflw": "test", "300w": "full", "lapa": "test", "aflw2000": "test"}
OFFICIAL_STRIDE = 4
WEIGHTS_PREFIX = "official:"
DOWNLOAD_HINT = ("the official models are models/<dataset>/<name>/{model.pth,config.yaml} of "
                 "github.com/baoshengyu/H3R (Git LFS) or of the Google Drive archive its README links")


# --- the official settings of one model ---------------------------------------------------------

@dataclass(frozen=True)
class OfficialSettings:
    """What torchalign reads from a model's ``config.yaml``, in h3r's names.

    arch: h3r backbone name (``BACKBONE.ARCH``); input_size: square side (``INPUT.SIZE``);
    box: ``"P1"``/``"P2"`` (``INPUT.BBOX``); padding: ``INPUT.SCALE``; flip_test: ``INPUT.FLIP``;
    flip_order: ``INPUT.FLIP_ORDER`` or None; keypoints: ``HEATMAP.OUT_CHANNEL`` or None;
    topk: ``HEATMAP.TOPK``; stride: ``HEATMAP.STRIDE``. ``source`` says where each value came from.
    """

    arch: str | None = None
    input_size: int = 256
    box: str = "P1"
    padding: float = PADDING
    flip_test: bool = True
    flip_order: tuple[int, ...] | None = None
    keypoints: int | None = None
    topk: int = 9
    stride: float = float(OFFICIAL_STRIDE)
    source: dict = dataclasses.field(default_factory=dict)


#: torchalign/cfg.py's defaults: what the official code uses when a config.yaml leaves a key out
TORCHALIGN_DEFAULTS = OfficialSettings()


def resolve_weights(weights: str | Path) -> tuple[Path, Path | None]:
    """``(model.pth, config.yaml or None)`` for a ``model.pth`` file or the folder that holds it.

    Accepts an ``official:`` prefix. Raises FileNotFoundError naming what was looked for.
    """
    text = str(weights)
    path = Path(text[len(WEIGHTS_PREFIX):] if text.startswith(WEIGHTS_PREFIX) else text).expanduser()
    model_file = path / "model.pth" if path.is_dir() else path
    if not model_file.is_file():
        looked = f"{model_file}" if path.is_dir() else f"{path}"
        raise FileNotFoundError(f"no official weights at {looked}: give the model.pth of an official model "
                                f"or its folder ({DOWNLOAD_HINT}); h3r never downloads weights")
    config = model_file.parent / "config.yaml"
    return model_file, config if config.is_file() else None


def read_official_config(path: Path) -> dict:
    """The fields of a torchalign ``config.yaml`` that the test scripts use, in h3r's names."""
    try:
        import yaml
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"reading {path} needs PyYAML (pip install pyyaml); or remove the file and "
                                  "pass --arch, --box and --input-size") from None
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected the sections INPUT, BACKBONE, HEATMAP of a torchalign config")
    section = {name: raw.get(name) or {} for name in ("INPUT", "BACKBONE", "HEATMAP")}
    out = {}
    inp, head = section["INPUT"], section["HEATMAP"]
    if "SIZE" in inp:
        size = inp["SIZE"]
        if not (isinstance(size, list) and len(size) == 2 and size[0] == size[1] and isinstance(size[0], int)):
            raise ValueError(f"{path}: INPUT.SIZE must be a square [S, S], got {size!r}")
        out["input_size"] = size[0]
    for key, name in (("BBOX", "box"), ("SCALE", "padding"), ("FLIP", "flip_test")):
        if key in inp:
            out[name] = inp[key]
    if "FLIP_ORDER" in inp:
        out["flip_order"] = tuple(int(i) for i in inp["FLIP_ORDER"])
    if "ARCH" in section["BACKBONE"]:
        archs = {official: ours for ours, official in OFFICIAL_ARCHS.items()}
        if section["BACKBONE"]["ARCH"] not in archs:
            raise ValueError(f"{path}: BACKBONE.ARCH {section['BACKBONE']['ARCH']!r} is not one h3r converts "
                             f"({sorted(archs)})")
        out["arch"] = archs[section["BACKBONE"]["ARCH"]]
    for key, name in (("OUT_CHANNEL", "keypoints"), ("TOPK", "topk"), ("STRIDE", "stride")):
        if key in head:
            out[name] = head[key]
    return out


def official_settings(model_file: Path, config: Path | None = None, **overrides) -> OfficialSettings:
    """The settings a model is evaluated with: ``overrides`` (non-None), else ``config.yaml``,
    else torchalign's defaults; the architecture, if still unknown, is guessed from the weights."""
    from_config = read_official_config(config) if config is not None else {}
    values, source = {}, {}
    for f in dataclasses.fields(OfficialSettings):
        if f.name == "source":
            continue
        if overrides.get(f.name) is not None:
            values[f.name], source[f.name] = overrides[f.name], "argument"
        elif f.name in from_config:
            values[f.name], source[f.name] = from_config[f.name], str(config)
        else:
            values[f.name], source[f.name] = getattr(TORCHALIGN_DEFAULTS, f.name), "torchalign/cfg.py default"
    if values["arch"] is None:
        guess = guess_official_arch(read_state_dict(model_file))
        if guess is None:
            raise ValueError(f"cannot tell the backbone of {model_file} from its keys; pass --arch "
                             f"({', '.join(OFFICIAL_ARCHS)})")
        values["arch"], source["arch"] = guess, "guessed from the weights"
    if values["box"] not in ("P1", "P2"):
        raise ValueError(f"box must be 'P1' or 'P2', got {values['box']!r} (from {source['box']})")
    if float(values["stride"]) != OFFICIAL_STRIDE:
        raise ValueError(f"{model_file}: HEATMAP.STRIDE {values['stride']} (from {source['stride']}); the "
                         f"converted models predict at stride {OFFICIAL_STRIDE}")
    return OfficialSettings(**values, source=source)


# --- the official crop, rendered as torchalign renders it ----------------------------------------

def official_window(box, padding: float = PADDING) -> list[float]:
    """torchalign's ``rect`` for an inclusive box ``x1, y1, x2, y2``: the square of side
    ``wh = padding * max(x2 - x1 + 1, y2 - y1 + 1)`` whose corner is ``(x1 + x2 + 1 - wh) / 2``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    wh = max(x2 - x1 + 1, y2 - y1 + 1) * padding
    left, top = (x1 + x2 + 1 - wh) / 2, (y1 + y2 + 1 - wh) / 2
    return [left, top, left + wh, top + wh]


class OfficialRender(CropTransform):
    """The official test-time crop with torchalign's pixels: ``PIL.Image.crop(rect)`` (rounded to
    whole pixels, black outside the image) then torchvision's ``resize`` (PIL bilinear, low-passed
    when shrinking). Landmarks and ``affine`` are the official mapping of :func:`official_crop`."""

    def __init__(self, input_size, flip_index, padding: float = PADDING):
        super().__init__(input_size, flip_index, padding, official=True)

    def __call__(self, image: np.ndarray, keypoints: np.ndarray, box: np.ndarray, rng=None) -> Crop:
        _, affine = official_crop(box, self.input_size, self.padding)
        width, height = self.input_size
        window = Image.fromarray(image).crop(official_window(box, self.padding))
        crop = np.array(TF.resize(window, [height, width], interpolation=InterpolationMode.BILINEAR))
        xy = apply_affine(torch.from_numpy(np.asarray(keypoints, dtype=np.float64)), affine)
        return Crop(crop, xy.float(), affine, np.arange(len(self.flip_index)))


def protocol_dataset(name: str, split: str, data_root, input_size: int, box: str, protocol: str = "official",
                     padding: float = PADDING, normalizer: str | None = None):
    """A test set cut out as ``protocol`` says (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "official" and name not in OFFICIAL_SPLITS:
        raise ValueError(f"the official protocol is defined for {sorted(OFFICIAL_SPLITS)} (the official test "
                         f"scripts), not {name!r}; use protocol='ours'")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; real datasets: {sorted(DATASETS)}")
    kwargs = {"normalizer": normalizer} if normalizer is not None else {}
    dataset = build_dataset(name, split, data_root=data_root, input_size=input_size, box=box, padding=padding,
                            official=protocol == "official", **kwargs)
    if protocol == "official":
        dataset.transform = OfficialRender(dataset.input_size, dataset.layout.flip_index, padding)
    return dataset


# --- evaluating ----------------------------------------------------------------------------------

def evaluate_official(weights: str | Path, arch: str | None = None, dataset: str = "wflw", data_root=None,
                      split: str | None = None, input_size: int | None = None, box: str | None = None,
                      flip_test: bool | None = None, device: str = "auto", *, protocol: str = "official",
                      normalizer: str | None = None, batch_size: int = 32, progress: bool = True) -> dict:
    """Evaluate an official ``model.pth`` (or its folder) on a benchmark, as the official script does.

    ``arch``, ``input_size``, ``box`` and ``flip_test`` default to the model's ``config.yaml`` (else
    torchalign's defaults; the architecture is then guessed from the weights). ``split`` defaults to
    :data:`OFFICIAL_SPLITS`. ``protocol="ours"`` cuts the faces with h3r's exact crop instead (same
    decoder). Returns a JSON-ready dict (``summary``: NME, FR, AUC overall and per subset;
    ``settings`` and ``settings_source``; ``samples``; ``dataset_counts``; ``provenance``) plus
    ``predictions`` (tensors, per sample).
    """
    if dataset not in OFFICIAL_SPLITS:
        raise ValueError(f"official weights are evaluated on {sorted(OFFICIAL_SPLITS)}, not {dataset!r}")
    model_file, config = resolve_weights(weights)
    settings = official_settings(model_file, config, arch=arch, input_size=input_size, box=box,
                                 flip_test=flip_test)
    split = split or OFFICIAL_SPLITS[dataset]
    data = protocol_dataset(dataset, split, data_root, settings.input_size, settings.box, protocol,
                            settings.padding, normalizer)
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
    cfg = T.Config(dataset=dataset, data_root=None if data_root is None else str(data_root), test_split=split,
                   input_size=settings.input_size, box=settings.box, backbone=settings.arch, codec="h3r-official",
                   codec_args={"k": settings.topk}, heatmap_stride=OFFICIAL_STRIDE, flip_test=settings.flip_test,
                   score_mode="foreground", batch_size=batch_size, device=device, progress=progress)
    evaluation = T.evaluate(cfg, model.to(dev), T.build_codec_for(cfg), data, dev)
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


def evaluate_run(run: str | Path, protocol: str = "ours", split: str | None = None, flip_test: bool | None = None,
                 device: str = "auto", progress: bool = True) -> dict:
    """Re-evaluate a run trained by ``h3r train`` from its ``checkpoint.pt``.

    ``protocol="ours"`` rebuilds the run's own test set; ``"official"`` cuts the same faces (the
    run's box, input size) with the official crop and mapping (face benchmarks of
    :data:`OFFICIAL_SPLITS` only): what the official test script would report for this model,
    half-pixel offsets included. The run's codec decodes in both.
    """
    run_dir = Path(run)
    saved = run_dir / "checkpoint.pt"
    if not saved.is_file():
        raise FileNotFoundError(f"no checkpoint at {saved}: give the folder of a run started by `h3r train`")
    state = T.load_checkpoint(saved)
    cfg = T.Config.from_dict({**state["config"], "device": device, "progress": progress})
    if flip_test is not None:
        cfg.flip_test = flip_test
    split = split or cfg.test_split
    dev = pick_device(cfg.device)
    if protocol == "ours":
        data = T.build_data(cfg, split, train=False)
    else:
        data = protocol_dataset(cfg.dataset, split, cfg.data_root, cfg.input_size, cfg.box, protocol)
    model = build_model(cfg.backbone, data.layout.num_keypoints, head=cfg.head, heatmap_stride=cfg.heatmap_stride,
                        width_mult=cfg.width_mult)
    model.load_state_dict(state["model"])
    evaluation = T.evaluate(cfg, model.to(dev), T.build_codec_for(cfg), data, dev)
    return {"protocol": protocol, "run": str(run_dir), "dataset": cfg.dataset, "split": split,
            "epoch": state["epoch"], "samples": len(data), "summary": evaluation["summary"],
            "provenance": provenance(dev), "predictions": evaluation["predictions"]}


# --- the official model zoo ------------------------------------------------------------------------

#: README dataset name -> (h3r dataset, folder under models/); AFLW2000-3D models are trained on 300W-LP
README_DATASETS = {"WFLW": ("wflw", "wflw"), "LaPa": ("lapa", "lapa"), "300W": ("300w", "300w"),
                   "AFLW2000-3D": ("aflw2000", "300wlp/pts3d")}
#: README backbone name -> (h3r architecture, the prefix of the official folder names)
README_BACKBONES = {"HRNet-W18": ("hrnet_w18", "hrnet18"), "MobileNetV2": ("mobilenet_v2", "mobilenet")}


def official_model_folder(dataset: str, backbone: str, box: str, input_size: int) -> str:
    """The official folder of a README row, e.g. ``models/wflw/hrnet18_256x256_p1`` (README names)."""
    folder, prefix = README_DATASETS[dataset][1], README_BACKBONES[backbone][1]
    return f"models/{folder}/{prefix}_{input_size}x{input_size}_{box.lower()}"


__all__ = ["PROTOCOLS", "OFFICIAL_SPLITS", "README_BACKBONES", "README_DATASETS", "OfficialSettings", "OfficialRender", "evaluate_official",
           "evaluate_run", "official_model_folder", "official_settings", "official_window", "protocol_dataset",
           "read_official_config", "resolve_weights"]


# --- COCO: keypoint AP of top-down predictions -----------------------------------------------------

def coco_results(predictions: dict) -> list[dict]:
    """pycocotools result entries from :func:`h3r.train.predict` output on :class:`COCOKeypoints`:
    one per ground-truth person, keypoints in original-image pixels, each keypoint's confidence the
    decoder's peak value and the instance score their mean (HRNet's top-down convention, without
    its detector-box rescoring, since the boxes are ground truth)."""
    if "image_id" not in predictions:
        raise ValueError("these predictions carry no image_id: COCO AP needs predictions of a COCO dataset")
    pred, scores = predictions["pred"].double(), predictions["scores"].double()
    keypoints = torch.cat([pred, scores[..., None]], dim=-1).flatten(1)
    return [{"image_id": int(i), "category_id": 1, "keypoints": k.tolist(), "score": float(s.mean())}
            for i, k, s in zip(predictions["image_id"], keypoints, scores)]


def coco_ap_from_run(cfg, evaluation: dict) -> dict:
    """COCO keypoint AP (pycocotools) of a run's stored predictions on its COCO test split.

    ``evaluation`` is what :func:`h3r.experiments.reevaluate` returns (it names the predictions file).
    """
    from h3r.metrics import coco_keypoint_ap
    from h3r.train import build_data

    dataset = build_data(cfg, evaluation.get("test_split", cfg.test_split), train=False)
    predictions = torch.load(evaluation["predictions"], weights_only=False)
    return coco_keypoint_ap(coco_results(predictions), _load_json_file(dataset.annotation_file))


def _load_json_file(path) -> dict:
    import json

    with open(path) as f:
        return json.load(f)
