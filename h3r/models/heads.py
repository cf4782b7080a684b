"""Heads: fused features (N, C, Hh, Wh) -> what a codec decodes, and the stride they are read at.

The heatmap head is the official H3R ``BinaryHeadBlock`` (``torchalign/heatmap_head/blocks``): a
1x1 convolution to ``proj_channels`` (no bias), BatchNorm, ReLU, a 1x1 convolution (no bias) to
the outputs. It comes in two forms:

``"heatmap"``  K output channels: one score map per keypoint, (N, K, Hh, Wh).
``"binary"``   2K output channels viewed as the official code views them, ``(N, 2, K, Hh, Wh)``:
               index 0 along dim 1 is the background logit, index 1 the foreground logit of each
               cell (a two-class softmax per cell). :func:`binary_scores` turns it into (N, K, Hh, Wh).

Two more heads read the same features for the codecs that are not heatmaps:

``"simcc"``       :class:`SimCCHead`: the heatmap head's K maps, flattened, then one linear layer
                  per axis to the SimCC logits ``(x (N, K, Wx), y (N, K, Hy))``, as mmpose's
                  ``SimCCHead`` (:mod:`h3r.codecs.simcc`).
``"regression"``  :class:`RegressionHead`: global average pooling and one linear layer to
                  (N, K, 4), ``mu`` and the logits of ``sigma``, as mmpose's ``RLEHead``, holding
                  the flow of the RLE loss (:mod:`h3r.codecs.rle`).

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

from h3r.codecs.simcc import simcc_bins
from h3r.losses import RealNVP

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

    @classmethod
    def build(cls, in_channels: int, num_keypoints: int, kind: str, head_width: int | None = None, **_):
        """The head of ``kind`` for :func:`h3r.models.build_model` (every head takes its options)."""
        return cls(in_channels, num_keypoints, kind, head_width)

    def __init__(self, in_channels: int, num_keypoints: int, kind: str = "heatmap",
                 proj_channels: int | None = None):
        super().__init__()
        if kind not in ("heatmap", "binary"):
            raise ValueError(f"a heatmap head's kind is 'heatmap' or 'binary', got {kind!r}")
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


class SimCCHead(nn.Module):
    """SimCC's head: K maps at the heatmap stride, flattened, one linear layer per axis.

    Args:
        in_channels: channels of the fused features.
        num_keypoints: K.
        input_size: the network's input ``(width, height)``: the head is built for one size.
        heatmap_stride: the stride the K maps are made at (their cells are the linear layers' inputs).
        split_ratio: SimCC bins per input pixel (:func:`h3r.codecs.simcc.simcc_bins`).
        proj_channels: width of the hidden layer of the maps' block (:class:`HeatmapHead`).

    mmpose's ``SimCCHead`` makes the maps with one convolution (after optional deconvolutions);
    here they come from the same block as every heatmap head's, so that heads differ only in how
    the maps are read. The linear layers start as mmpose's (normal, std 0.01, zero bias).
    """

    kind = "simcc"

    @classmethod
    def build(cls, in_channels: int, num_keypoints: int, kind: str, head_width: int | None = None,
              heatmap_stride: int = BACKBONE_STRIDE, input_size=None, split_ratio: float = 2.0, **_):
        """The head for :func:`h3r.models.build_model`: built for one ``input_size``."""
        if input_size is None:
            raise ValueError("a SimCC head is built for one input size: pass input_size")
        return cls(in_channels, num_keypoints, input_size, heatmap_stride, split_ratio, head_width)

    def __init__(self, in_channels: int, num_keypoints: int, input_size, heatmap_stride: int, split_ratio: float,
                 proj_channels: int | None = None):
        super().__init__()
        w, h = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if w % heatmap_stride or h % heatmap_stride:
            raise ValueError(f"input size {w}x{h} is not a multiple of the heatmap stride {heatmap_stride}")
        self.num_keypoints, self.input_size = num_keypoints, (w, h)
        self.maps = HeatmapHead(in_channels, num_keypoints, "heatmap", proj_channels)
        cells = (w // heatmap_stride) * (h // heatmap_stride)
        bins_x, bins_y = simcc_bins((w, h), split_ratio)
        self.x, self.y = nn.Linear(cells, bins_x), nn.Linear(cells, bins_y)
        for layer in (self.x, self.y):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: Tensor, heatmap_stride: int = BACKBONE_STRIDE) -> tuple[Tensor, Tensor]:
        """Stride-4 features (N, C, H/4, W/4) -> x logits (N, K, Wx), y logits (N, K, Hy)."""
        maps = self.maps(features, heatmap_stride).flatten(2)  # (N, K, Hh Wh)
        if maps.shape[-1] != self.x.in_features:
            raise ValueError(f"the SimCC head was built for {self.input_size[0]}x{self.input_size[1]} inputs "
                             f"({self.x.in_features} cells at its stride), got {maps.shape[-1]} cells")
        return self.x(maps), self.y(maps)


class RegressionHead(nn.Module):
    """Direct regression: global average pooling, one linear layer to (N, K, 4), as mmpose's
    ``RLEHead`` (``mu`` (x, y) and the logits of ``sigma`` (x, y); :mod:`h3r.codecs.rle`).

    It holds the :class:`~h3r.losses.RealNVP` flow of the RLE loss, as mmpose's head holds its
    loss module: the flow is trained, saved and moved with the network; :attr:`loss_modules`
    hands it to :func:`h3r.losses.build_loss`.
    """

    kind = "regression"

    @classmethod
    def build(cls, in_channels: int, num_keypoints: int, kind: str, **_):
        """The head for :func:`h3r.models.build_model`."""
        return cls(in_channels, num_keypoints)

    def __init__(self, in_channels: int, num_keypoints: int):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.fc = nn.Linear(in_channels, num_keypoints * 4)
        self.flow = RealNVP()

    @property
    def loss_modules(self) -> dict[str, nn.Module]:
        return {"flow": self.flow}

    def forward(self, features: Tensor, heatmap_stride: int = BACKBONE_STRIDE) -> Tensor:
        """Features (N, C, h, w) at any stride -> (N, K, 4)."""
        return self.fc(features.mean(dim=(-2, -1))).view(len(features), self.num_keypoints, 4)


def to_float(output: Tensor | tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
    """A head's output (a tensor, or SimCC's pair) in float32."""
    return tuple(o.float() for o in output) if isinstance(output, tuple) else output.float()


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
    be multiples of s/4; :class:`h3r.models.KeypointModel` checks the input size).
    """
    if heatmap_stride == BACKBONE_STRIDE:
        return features
    if heatmap_stride < BACKBONE_STRIDE:
        factor = BACKBONE_STRIDE // heatmap_stride
        h, w = features.shape[-2:]
        return F.interpolate(features, size=(h * factor, w * factor), mode="bilinear", align_corners=False)
    return F.avg_pool2d(features, kernel_size=heatmap_stride // BACKBONE_STRIDE)


#: head kind (:data:`h3r.config.HEADS`) -> the class :func:`h3r.models.build_model` builds it with
HEAD_CLASSES: dict[str, type[nn.Module]] = {"heatmap": HeatmapHead, "binary": HeatmapHead, "simcc": SimCCHead,
                                            "regression": RegressionHead}
