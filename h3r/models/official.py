"""The authors' checkpoints (baoshengyu/H3R ``models/*/model.pth``) as h3r models.

A ``model.pth`` is the state dict of torchalign's ``FacialLandmarkDetector`` (``torchalign/api.py``):
``backbone.*`` (``torchalign/backbone/{hrnet,mobilenet}.py``) and ``heatmap_head.head.layers.*``
(``BinaryHeadBlock``, ``torchalign/heatmap_head/blocks/head_block.py``); its decoder and
transforms hold no tensors. Reading those definitions gives the map onto
``build_model(arch, K, head="binary")``:

Head
    ``heatmap_head.head.layers.{0,1,3}`` (1x1 conv C->C, BatchNorm C, 1x1 conv C->2K; index 2 is
    the ReLU) -> ``head.layers.{0,1,3}``: same modules, same order, same ``view(N, 2, K, H, W)``.

HRNet-W18 / W32 (``hrnet18``, ``hrnet32``)
    torchalign's ``HighResolutionNet`` is HRNet-Image-Classification's without the classification
    head, the code timm's ``hrnet_w18`` derives from. Attribute names and module order are the
    same (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1``, ``transition1-3``,
    ``stage2-4.{module}.branches.{b}.{block}.{conv,bn}{1,2}``, ``...fuse_layers.{i}.{j}...``; the
    ``None`` entries of torchalign's ``transition``/``fuse_layers`` lists are timm's parameter-less
    ``Identity``, so indices agree), and stage 4 keeps all four outputs in both. The map is a
    prefix: ``backbone.X -> backbone.body.X``.

MobileNetV2 (``mobilenetv2``)
    torchalign builds ``features`` from the torchvision configuration cut after the 96-channel
    stage: ``features.0`` = (conv 3x3 s2, BN, ReLU6), then 13 inverted-residual ``Block``\\ s
    whose ``conv`` is one flat ``nn.Sequential``. torchvision nests each conv+BN+ReLU6 into a
    ``Conv2dNormActivation``, so only the indices inside ``conv`` differ:

    =======================  =================================  ================================
    block                    torchalign ``features.i.conv.j``   torchvision ``features.i.conv.*``
    =======================  =================================  ================================
    i = 1 (expansion 1)      0 dw conv, 1 BN                    0.0, 0.1
                             3 1x1 conv, 4 BN                   1, 2
    i = 2..13 (expansion 6)  0 1x1 expand conv, 1 BN            0.0, 0.1
                             3 dw conv, 4 BN                    1.0, 1.1
                             6 1x1 project conv, 7 BN           2, 3
    =======================  =================================  ================================

    ``features.0.{0,1}`` has the same names in both. Shapes are identical (same channel plan,
    same residual rule); ``backbone.features.*`` keeps its prefix.

Loading is strict: every tensor of the file is used, every tensor of the model is given (old
checkpoints may lack BatchNorm's ``num_batches_tracked`` counters, which are set to 0), and
shapes must agree; otherwise a ValueError names the file, the first offending keys and the
expected shapes.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

from h3r.models import KeypointModel, build_model
from h3r.models.backbones import _first, match_state_dict, read_state_dict

#: the official decoder reads cell ``i`` as input pixel ``OFFICIAL_STRIDE * i`` (``HEATMAP.STRIDE``)
OFFICIAL_STRIDE = 4
#: activation points of the official decoder (``HEATMAP.TOPK``)
OFFICIAL_TOPK = 9
#: h3r backbone name -> the name in torchalign's config.yaml (``BACKBONE.ARCH``)
OFFICIAL_ARCHS = {"hrnet_w18": "hrnet18", "hrnet_w32": "hrnet32", "mobilenet_v2": "mobilenetv2"}

HEAD_PREFIX = "heatmap_head.head.layers."
HEAD_WEIGHT = HEAD_PREFIX + "3.weight"  # (2K, C, 1, 1)

# torchalign MobileNetV2 Block.conv index -> torchvision InvertedResidual.conv index
_MOBILENET_EXPAND1 = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}
_MOBILENET_EXPAND6 = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
_MOBILENET_KEY = re.compile(r"features\.(\d+)\.conv\.(\d+)\.(.+)")


def convert_official_state_dict(state_dict: Mapping[str, Tensor], arch: str) -> dict[str, Tensor]:
    """Rename a torchalign ``FacialLandmarkDetector`` state dict to ``build_model(arch, head="binary")``.

    Tensors are not copied or reshaped. Raises ValueError for an unknown ``arch`` and for keys
    outside torchalign's backbone and head (naming the first ones); whether the renamed dict fits
    the model is checked by :func:`load_official`.
    """
    if arch not in OFFICIAL_ARCHS:
        raise ValueError(f"unknown official architecture {arch!r}; choose one of {sorted(OFFICIAL_ARCHS)}")
    out, stray = {}, []
    for key, value in state_dict.items():
        if key.startswith(HEAD_PREFIX):
            out["head.layers." + key[len(HEAD_PREFIX):]] = value
        elif key.startswith("backbone."):
            out[_backbone_key(key[len("backbone."):], arch)] = value
        else:
            stray.append(key)
    if stray:
        raise ValueError(f"{len(stray)} keys belong neither to torchalign's backbone nor to its heatmap "
                         f"head, e.g. {_first(stray)}; is this a torchalign FacialLandmarkDetector "
                         "state dict?")
    return out


def _backbone_key(key: str, arch: str) -> str:
    if arch.startswith("hrnet"):
        return "backbone.body." + key
    match = _MOBILENET_KEY.fullmatch(key)
    if match is None:  # features.0.{0,1}.*, or a key the strict check will reject
        return "backbone." + key
    block, index, rest = match.groups()
    table = _MOBILENET_EXPAND1 if block == "1" else _MOBILENET_EXPAND6
    return f"backbone.features.{block}.conv.{table.get(index, f'unknown{index}')}.{rest}"


def load_official(path: str | Path, arch: str, num_keypoints: int | None = None) -> KeypointModel:
    """Build ``build_model(arch, K, head="binary")`` and load an official ``model.pth`` into it.

    ``num_keypoints`` defaults to what the file's head predicts (its last conv has 2K outputs);
    given, it must agree. The model is returned in eval mode. Official models predict at
    heatmap stride 4 and decode with ``binary_scores(output, "foreground")`` + top-9 softmax.
    """
    given = read_state_dict(path)
    if HEAD_WEIGHT not in given:
        raise ValueError(f"{path} has no {HEAD_WEIGHT!r} (the official head's last convolution); keys "
                         f"start with {_first(list(given))}: not a torchalign FacialLandmarkDetector file")
    found, odd = divmod(given[HEAD_WEIGHT].shape[0], 2)
    if odd:
        raise ValueError(f"{path}: {HEAD_WEIGHT} has {given[HEAD_WEIGHT].shape[0]} outputs; the official "
                         "binary head has an even number, 2 per keypoint")
    if num_keypoints is not None and num_keypoints != found:
        raise ValueError(f"{path} predicts {found} keypoints ({HEAD_WEIGHT} has "
                         f"{given[HEAD_WEIGHT].shape[0]} = 2 x {found} outputs), not {num_keypoints}")
    try:
        converted = convert_official_state_dict(given, arch)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    model = build_model(arch, found, head="binary")
    guess = guess_official_arch(given)
    hint = f" (read as {arch}; it looks like {guess})" if guess not in (None, arch) else f" (read as {arch})"
    origin = dict(zip(converted, given))  # errors name keys as the file spells them
    file_key = lambda key: origin.get(key) or official_key(key, arch)  # noqa: E731
    model.load_state_dict(match_state_dict(converted, model.state_dict(), f"{path}{hint}", file_key))
    return model.eval()


def official_key(key: str, arch: str) -> str:
    """The torchalign name of one of our model's keys (the inverse of the conversion)."""
    if key.startswith("head.layers."):
        return HEAD_PREFIX + key[len("head.layers."):]
    if arch.startswith("hrnet"):
        return "backbone." + key.removeprefix("backbone.body.")
    match = re.fullmatch(r"backbone\.features\.(\d+)\.conv\.(\d+(?:\.\d+)?)\.(\w+)", key)
    if match is None:
        return key
    block, index, rest = match.groups()
    table = _MOBILENET_EXPAND1 if block == "1" else _MOBILENET_EXPAND6
    inverse = {ours: theirs for theirs, ours in table.items()}
    return f"backbone.features.{block}.conv.{inverse[index]}.{rest}" if index in inverse else key


def guess_official_arch(state_dict: Mapping[str, Tensor]) -> str | None:
    """The h3r name of the backbone a torchalign state dict holds, from its keys; None if unclear."""
    branch = state_dict.get("backbone.transition1.0.0.weight")
    if branch is not None:  # HRNet: the first branch's width is W
        return {18: "hrnet_w18", 32: "hrnet_w32"}.get(branch.shape[0])
    if any(key.startswith("backbone.features.") for key in state_dict):
        return "mobilenet_v2"
    return None
