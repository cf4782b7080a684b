"""Heatmap heads: fused features (N, C, Hh, Wh) -> heatmaps, and the stride they are read at.

The head is the official H3R ``BinaryHeadBlock`` (``torchalign/heatmap_head/blocks``): a 1x1
convolution to ``proj_channels`` (no bias), BatchNorm, ReLU, a 1x1 convolution (no bias) to the
outputs. It comes in two forms:

``"heatmap"``  K output channels: one score map per keypoint, (N, K, Hh, Wh).
``"binary"``   2K output channels viewed as the official code views them, ``(N, 2, K, Hh, Wh)``:
               index 0 along dim 1 is the background logit, index 1 the foreground logit of each
               cell (a two-class softmax per cell). :func:`binary_scores` turns it into (N, K, Hh, Wh).

Heatmap stride
    The backbones fuse at stride 4. For another heatmap stride ``s`` the fused features are
    resized *before* the head, so the head always predicts at the resolution it is trained at:
    ``s < 4`` bilinear upsampling by ``4 / s`` (``align_corners=False``), ``s > 4`` average pooling
    over ``s/4 x s/4`` blocks. Both respect the ``"center"`` alignment of :mod:`h3r.geometry`:
    a stride-``s`` cell is the mean of exactly the stride-4 cells it covers, and bilinear
    upsampling places fine cell centres at ``u_fine = f (u + 1/2) - 1/2``. Pooling (rather than
    a strided convolution) adds no parameters, so models at different strides differ only in
    the resolution of their output. When upsampling, the head's first layer runs before it
    instead: a 1x1 convolution without bias is linear over channels and bilinear resizing is
    linear over space, so the two commute and the output is the same (to float rounding), while
    the upsampled map has ``proj_channels`` rather than ``C`` channels (stride 2: a quarter less
    time per training step of the ``cpu`` profile's network).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

HEAD_KINDS = ("heatmap", "binary")
HEATMAP_STRIDES = (1, 2, 4, 8, 16, 32)
BACKBONE_STRIDE = 4
SCORE_MODES = ("foreground", "log_odds")


class HeatmapHead(nn.Module):
    """1x1 conv -> BN -> ReLU -> 1x1 conv, as the official H3R head.

    Args:
        in_channels: channels of the fused features (270 for HRNet-W18, 152 for MobileNetV2).
        num_keypoints: K.
        kind: ``"heatmap"`` (N, K, Hh, Wh) or ``"binary"`` (N, 2, K, Hh, Wh).
        proj_channels: width of the hidden layer; the official models use ``in_channels``.

    The last convolution starts near zero (normal, std 1e-3, as HRNet's pose heads), so the
    initial maps are flat and the binary head starts at p(foreground) = 1/2 everywhere.
    """

    def __init__(self, in_channels: int, num_keypoints: int, kind: str = "heatmap",
                 proj_channels: int | None = None):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"head kind must be one of {HEAD_KINDS}, got {kind!r}")
        if not (isinstance(num_keypoints, int) and num_keypoints > 0):
            raise ValueError(f"num_keypoints must be a positive integer, got {num_keypoints!r}")
        proj_channels = in_channels if proj_channels is None else proj_channels
        out_channels = num_keypoints * (2 if kind == "binary" else 1)
        self.kind, self.num_keypoints = kind, num_keypoints
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, proj_channels, 1, bias=False),
            nn.BatchNorm2d(proj_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(proj_channels, out_channels, 1, bias=False),
        )
        nn.init.normal_(self.layers[3].weight, std=1e-3)

    def forward(self, features: Tensor, heatmap_stride: int = BACKBONE_STRIDE) -> Tensor:
        """Stride-4 features (N, C, H/4, W/4) -> (N, K, Hh, Wh) for ``"heatmap"``, (N, 2, K, Hh, Wh)
        for ``"binary"``, at ``Hh = H / heatmap_stride`` (:func:`resample_to_stride`)."""
        if heatmap_stride < BACKBONE_STRIDE:  # project, then upsample (see the module docstring)
            out = self.layers[1:](resample_to_stride(self.layers[0](features), heatmap_stride))
        else:
            out = self.layers(resample_to_stride(features, heatmap_stride))
        if self.kind == "binary":
            n, _, h, w = out.shape
            out = out.view(n, 2, self.num_keypoints, h, w)
        return out


def binary_scores(output: Tensor, mode: str = "foreground") -> Tensor:
    """Decodable scores (N, K, Hh, Wh) from a binary head's output (N, 2, K, Hh, Wh).

    ``"foreground"``: the raw foreground logit, what the official decoder ranks and softmaxes.
    ``"log_odds"``: foreground minus background logit, ``log p / (1 - p)`` of the two-class softmax,
    the quantity the binary cross-entropy actually trains.
    """
    if output.ndim != 5 or output.shape[1] != 2:
        raise ValueError(f"a binary head's output has shape (N, 2, K, H, W), got {tuple(output.shape)}")
    if mode == "foreground":
        return output[:, 1]
    if mode == "log_odds":
        return output[:, 1] - output[:, 0]
    raise ValueError(f"mode must be one of {SCORE_MODES}, got {mode!r}")


def resample_to_stride(features: Tensor, heatmap_stride: int) -> Tensor:
    """Stride-4 features (N, C, H/4, W/4) -> (N, C, H/s, W/s) for ``s = heatmap_stride``.

    Bilinear upsampling for s < 4, average pooling for s > 4 (the stride-4 map's sides must then
    be multiples of s/4; :class:`h3r.models.HeatmapModel` checks the input size).
    """
    if heatmap_stride == BACKBONE_STRIDE:
        return features
    if heatmap_stride < BACKBONE_STRIDE:
        factor = BACKBONE_STRIDE // heatmap_stride
        h, w = features.shape[-2:]
        return F.interpolate(features, size=(h * factor, w * factor), mode="bilinear", align_corners=False)
    return F.avg_pool2d(features, kernel_size=heatmap_stride // BACKBONE_STRIDE)
