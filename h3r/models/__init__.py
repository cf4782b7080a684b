"""The paper's networks: a backbone fused at stride 4, resized to the heatmap stride, a head.

>>> model = build_model("hrnet_w18", num_keypoints=98, head="binary")
>>> model(torch.zeros(1, 3, 256, 256)).shape
torch.Size([1, 2, 98, 64, 64])

See :mod:`h3r.models.backbones`, :mod:`h3r.models.heads`, and :mod:`h3r.models.official` for the
authors' checkpoints.

Counting
    :func:`count_flops` returns multiply-accumulates (MACs), the unit of the official README's
    "FLOPs" (``examples/thop-profile.py``: thop's ``profile`` returns MACs). It counts
    convolutions, linear layers and matrix products with ``torch.utils.flop_counter.FlopCounterMode``
    and halves the total (one MAC = two FLOPs). thop counts per module: convolutions as MACs, and
    also 2 operations per BatchNorm output element in eval mode, but nothing for ReLU, nearest
    upsampling or functional ops (``F.interpolate``, residual additions). So our figure is below
    thop's by its BatchNorm term: 0.8% for HRNet-W18, 3.4% for MobileNetV2, whose depthwise
    convolutions are cheap next to its BatchNorms (3.5-5.6% below the README's rounded figures).
    ``count_batchnorm=True`` adds thop's BatchNorm term and reproduces every README figure to its
    two decimals.
"""
from __future__ import annotations

from h3r._extras import require

require("train", "h3r.models (HRNet-W18, MobileNetV2)")

import math
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from h3r.config import HEADS
from h3r.models.backbones import BACKBONES, build_backbone
from h3r.models.heads import (HEAD_CLASSES, HEATMAP_STRIDES, HeatmapHead, RegressionHead, SimCCHead, binary_scores,
                              to_float)


class KeypointModel(nn.Module):
    """A backbone and a head, whichever the head: heatmaps, SimCC's bins or regressed coordinates.
    image (N, 3, H, W) -> head output at ``heatmap_stride``: (N, K, H/s, W/s) or (N, 2, K, H/s, W/s),
    or the SimCC pair, or (N, K, 4) (:mod:`h3r.models.heads`).

    Attributes: ``heatmap_stride`` (s), ``num_keypoints`` (K), ``head_kind`` (one of
    :data:`h3r.config.HEADS`), ``size_divisor`` (input sides must be multiples of it), ``loss_modules``
    (the trained parts of the loss the head holds, for :func:`h3r.losses.build_loss`: RLE's flow).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, heatmap_stride: int = 4):
        super().__init__()
        if heatmap_stride not in HEATMAP_STRIDES:
            raise ValueError(f"heatmap_stride must be one of {HEATMAP_STRIDES}, got {heatmap_stride!r}")
        self.backbone, self.head = backbone, head
        self.heatmap_stride = heatmap_stride
        self.num_keypoints, self.head_kind = head.num_keypoints, head.kind
        self.size_divisor = math.lcm(backbone.size_divisor, heatmap_stride)

    def forward(self, image: Tensor) -> Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(image.shape)}")
        h, w = image.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise ValueError(f"input is {w}x{h} (WxH) but this model needs sides that are multiples of "
                             f"{self.size_divisor}; crop or resize to e.g. "
                             f"{_round_up(w, self.size_divisor)}x{_round_up(h, self.size_divisor)}")
        return self.head(self.backbone(image), self.heatmap_stride)

    @property
    def loss_modules(self) -> dict[str, nn.Module]:
        return getattr(self.head, "loss_modules", {})


def build_model(backbone: str = "hrnet_w18", num_keypoints: int = 98, head: str = "heatmap",
                heatmap_stride: int = 4, width_mult: float = 1.0,
                pretrained: str | Path | None = None, head_width: int | None = None,
                input_size: int | tuple[int, int] | None = None, split_ratio: float = 2.0) -> KeypointModel:
    """Build a network.

    Args:
        backbone: ``"hrnet_w18"``, ``"hrnet_w32"``, ``"mobilenet_v2"`` or ``"plain_cnn"``.
        num_keypoints: K.
        head: ``"heatmap"`` (K maps), ``"binary"`` (the official 2K-channel head), ``"simcc"``
            (per-axis logits) or ``"regression"`` (K x 4 numbers, with RLE's flow).
        heatmap_stride: input pixels per heatmap cell, one of 1, 2, 4, 8, 16, 32.
        width_mult: the width multiplier of MobileNetV2 and the plain CNN.
        pretrained: path of a local ImageNet checkpoint for the backbone, or None.
        head_width: the head's hidden channels; None: the backbone's, as the official head.
        input_size: ``(width, height)`` (or an int) the SimCC head is built for; only ``"simcc"``.
        split_ratio: SimCC bins per input pixel; only ``"simcc"``.
    """
    if head not in HEAD_CLASSES:
        raise ValueError(f"head kind must be one of {HEADS}, got {head!r}")
    if not (isinstance(num_keypoints, int) and num_keypoints > 0):
        raise ValueError(f"num_keypoints must be a positive integer, got {num_keypoints!r}")
    body = build_backbone(backbone, width_mult=width_mult, pretrained=pretrained)
    top = HEAD_CLASSES[head].build(body.out_channels, num_keypoints, head, head_width=head_width,
                                   heatmap_stride=heatmap_stride, input_size=input_size, split_ratio=split_ratio)
    return KeypointModel(body, top, heatmap_stride)


def count_params(model: nn.Module) -> int:
    """Number of parameters (BatchNorm's affine weights included, running statistics not)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: tuple[int, int] | int, count_batchnorm: bool = False) -> int:
    """Multiply-accumulates of one forward pass on a single image of ``input_size`` (width, height).

    Counted by ``FlopCounterMode`` (convolutions, linear layers, matrix products) and halved;
    ``count_batchnorm`` adds thop's 2 operations per BatchNorm output element. See the module
    docstring for how this compares with the official README's thop figures.
    """
    w, h = (input_size, input_size) if isinstance(input_size, int) else input_size
    # shapes are all the counter needs: run on meta tensors, no arithmetic, weights untouched
    meta = {name: torch.empty_like(t, device="meta")
            for name, t in (*model.named_parameters(), *model.named_buffers())}
    image = torch.empty(1, 3, h, w, device="meta", dtype=next(model.parameters()).dtype)
    # BatchNorm has no MACs for the counter and its meta kernel is a slow Python decomposition
    # (60% of the time for HRNet): run it as the identity, which has its output's shape.
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and "forward" not in vars(m)]
    norm_elements: list[int] = []
    hooks = [m.register_forward_hook(lambda m, i, out: norm_elements.append(out.numel()))
             for m in norms if count_batchnorm]
    was_training = model.training
    model.eval()
    try:
        for m in norms:
            m.forward = nn.Identity.forward.__get__(m)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            torch.func.functional_call(model, meta, (image,))
    finally:
        model.train(was_training)
        for m in norms:
            del m.forward
        for hook in hooks:
            hook.remove()
    return counter.get_total_flops() // 2 + 2 * sum(norm_elements)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


__all__ = ["BACKBONES", "HEATMAP_STRIDES", "HeatmapHead", "KeypointModel", "RegressionHead",
           "SimCCHead", "binary_scores", "build_model", "count_flops", "count_params", "to_float"]
