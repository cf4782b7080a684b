"""The official H3R model zoo: where each released model lives and what its ``config.yaml`` says.

The authors released 14 models (baoshengyu/H3R ``models/<dataset>/<name>/``, each a ``model.pth``
beside a ``config.yaml``; Git LFS or the Google Drive archive of its README). This module finds
them (:func:`resolve_weights`, :func:`official_model_folder`) and reads their settings as
torchalign reads them (:func:`official_settings`: ``INPUT.SIZE``, ``INPUT.BBOX``,
``INPUT.SCALE``, ``INPUT.FLIP``, ``INPUT.FLIP_ORDER``, ``BACKBONE.ARCH``, ``HEATMAP.TOPK``, ...,
falling back to ``torchalign/cfg.py``'s defaults; explicit arguments override both). Their
weights are converted by :mod:`h3r.models.official`; :func:`h3r.evaluation.evaluate_official`
runs them under the official protocol.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from h3r.data.transforms import PADDING
from h3r.models.backbones import read_state_dict
from h3r.models.official import OFFICIAL_ARCHS, OFFICIAL_STRIDE, OFFICIAL_TOPK, guess_official_arch

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
    topk: int = OFFICIAL_TOPK
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


def readme_models():
    """The README's models, one row each in its order: ``dataset``, ``backbone``, ``bbox``,
    ``input_size`` and the reported ``Params`` (M), ``FLOPs`` (G) and ``NME`` (%)
    (:func:`h3r.reported.reported`), with the ``keypoints`` and h3r ``arch`` that rebuild it."""
    from h3r.data.registry import DATASETS
    from h3r.reported import reported

    keys = ["dataset", "backbone", "bbox", "input_size"]
    models = reported("official_readme").pivot_table(index=keys, columns="metric", values="value", sort=False)
    models = models.reset_index()[[*keys, "Params", "FLOPs", "NME"]]
    models["keypoints"] = models.dataset.map(lambda d: DATASETS[README_DATASETS[d][0]].layout.num_keypoints)
    models["arch"] = models.backbone.map(lambda b: README_BACKBONES[b][0])
    return models


def computed_costs(models):
    """What h3r computes of each of ``models`` (:func:`readme_models`) from its own network with
    the official two-channel head: ``"params h3r (M)"``, ``"MACs h3r (G)"`` (convolutions and
    matrix products) and ``"FLOPs h3r, thop-style (G)"`` (plus thop's 2 operations per BatchNorm
    output, the README's count), on ``models``' index. Meta tensors: no weights, no data."""
    import pandas as pd

    from h3r.models import build_model, count_flops, count_params

    costs = {}  # (arch, keypoints, input size) -> (params, MACs, thop-equivalent MACs)
    for arch, k in sorted(set(zip(models.arch, models.keypoints))):
        model = build_model(arch, k, head="binary")  # one network, counted at each of its sizes
        for size in sorted(set(models.input_size[(models.arch == arch) & (models.keypoints == k)])):
            costs[arch, k, size] = (count_params(model) / 1e6, count_flops(model, size) / 1e9,
                                    count_flops(model, size, count_batchnorm=True) / 1e9)
    keys = zip(models.arch, models.keypoints, models.input_size)
    return pd.DataFrame([costs[key] for key in keys], index=models.index,
                        columns=["params h3r (M)", "MACs h3r (G)", "FLOPs h3r, thop-style (G)"])
