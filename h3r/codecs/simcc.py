"""SimCC: a keypoint as two 1-D classifications (Li et al., ECCV 2022; RTMPose's default).

Each axis of the input is cut into ``split_ratio`` bins per pixel: ``Wx = round(W r)`` bins along
x, ``Hy = round(H r)`` along y. The network predicts one logit vector per axis and keypoint, and
the label of a keypoint is a 1-D profile over the bins of each axis. The bins play the role of
heatmap cells: :meth:`Codec.to_heatmap` maps input pixels to bin units (``heatmap_size`` is
``(Wx, Hy)``), so a bin is ``1 / r`` pixels wide.

Labels (mmpose's ``SimCCLabel``):

``"gaussian"``  ``exp(-(t - c)^2 / 2 sigma^2)`` over the bins ``t`` of the bin ``c = round(u)``,
                divided by ``sigma sqrt(2 pi)`` with ``normalize`` (mmpose's default: the label
                sums to about 1). ``sigma`` is in bins.
``"onehot"``    1 on the bin ``c``.

Rounding. ``rounding="round"`` puts the label on the nearest bin, as mmpose does, so the label
loses up to half a bin. ``rounding="random"`` is the paper's randomized rounding on 1-D bins: with
``u = l + f`` (``l`` the lower bin, ``f`` in [0, 1]) the label sits on ``l + 1`` with probability
``f`` and on ``l`` otherwise, independently per axis (:func:`h3r.codecs.h3r.randomized_cells`),
so the drawn bin is ``u`` in expectation; the expected label is the 2-bin linear split
``(1 - f) e_l + f e_{l+1}`` (:meth:`SimCC.expected_target`).

Decoding. ``decoder="argmax"``: the highest bin per axis (mmpose's ``get_simcc_maximum``).
``decoder="topk"``: the ``k`` highest bins per axis weighted by the softmax of their logits, H3R's
decoder in 1-D: the expected label's logits ``log p`` decode to ``u`` exactly with ``k >= 2``.
Scores: the smaller of the two axes' maximal logits, as mmpose (which also marks a keypoint
whose score is <= 0 by the coordinate -1; here the coordinate is always the decoded one).

Presets: ``simcc`` (Gaussian, sigma 6 bins, normalised, argmax: mmpose's defaults), ``simcc-round``
(one-hot on the rounded bin, argmax) and ``simcc-random`` (one-hot on a randomized-rounding draw,
top-k decoding), the last two the matched pair that differs only in how the label is rounded and
read. mmpose maps ``u = x r`` (``align="corner"``); the default here is ``"center"``, under which
the bins tile the image symmetrically and a mirrored image gives the mirrored labels.
"""
from __future__ import annotations

import torch
from torch import Tensor

from h3r.codecs.base import Codec, Target, _as_size, cell_coordinates, on_grid, register_codec
from h3r.codecs.h3r import lower_and_fraction, randomized_cells
from h3r.geometry import Size

LABELS = ("gaussian", "onehot")
ROUNDINGS = ("round", "random")
DECODERS = ("argmax", "topk")


def simcc_bins(input_size, split_ratio: float) -> Size:
    """The bins ``(Wx, Hy) = (round(W r), round(H r))`` of an input ``(W, H)`` (or an int) at
    ``split_ratio`` ``r > 0`` bins per pixel; the network's SimCC head has as many outputs."""
    if not (isinstance(split_ratio, (int, float)) and split_ratio > 0):
        raise ValueError(f"split_ratio must be a positive number (bins per input pixel), got {split_ratio!r}")
    w, h = _as_size(input_size, "input_size")
    bins = (round(w * split_ratio), round(h * split_ratio))
    if min(bins) < 2:
        raise ValueError(f"split_ratio {split_ratio} leaves {bins} bins (x, y) for the input {(w, h)}; "
                         "SimCC needs at least 2 per axis")
    return bins


@register_codec(presets={
    "simcc": {"loss": "simcc_kl"},
    "simcc-round": {"args": {"label": "onehot"}, "loss": "simcc_kl"},
    "simcc-random": {"args": {"label": "onehot", "rounding": "random", "decoder": "topk"}, "loss": "simcc_kl",
                     "target": "expected"},
})
class SimCC(Codec):
    """Per-axis 1-D labels over ``split_ratio`` bins per input pixel; argmax or top-k decoding.

    Args:
        input_size: ``(width, height)``.
        heatmap_size: not used (the network's feature map, which the labels do not depend on);
            accepted so that :func:`h3r.codecs.build_codec` builds every codec alike.
        split_ratio: bins per input pixel, ``r > 0``.
        label: ``"gaussian"`` or ``"onehot"``.
        sigma: the Gaussian label's standard deviation in bins (mmpose's default 6).
        normalize: divide the Gaussian label by ``sigma sqrt(2 pi)`` (mmpose's default).
        rounding: ``"round"`` (the nearest bin) or ``"random"`` (randomized rounding).
        decoder: ``"argmax"`` or ``"topk"`` (softmax over the ``k`` highest logits per axis).
        k: bins per axis of the top-k decoder, at least 1.
        align: coordinate alignment (default ``"center"``; mmpose's is ``"corner"``).

    ``encode`` returns ``Target(heatmaps=None, keypoints=uv, weights, x_labels, y_labels)``.
    ``decode`` takes the head's output ``(x_logits (N, K, Wx), y_logits (N, K, Hy))``.
    Representable: the label's bin on the grid, ``-1/2 <= u < Wx - 1/2`` for ``"round"``, both
    rounding neighbours on it, ``0 <= u <= Wx - 1``, for ``"random"``; others get weight 0.
    """

    name = "simcc"
    head = "simcc"

    def __init__(self, input_size, heatmap_size=None, split_ratio: float = 2.0, label: str = "gaussian",
                 sigma: float = 6.0, normalize: bool = True, rounding: str = "round", decoder: str = "argmax",
                 k: int = 3, align: str | None = None):
        super().__init__(input_size, simcc_bins(input_size, split_ratio), align)
        for value, allowed, what in ((label, LABELS, "label"), (rounding, ROUNDINGS, "rounding"),
                                     (decoder, DECODERS, "decoder")):
            if value not in allowed:
                raise ValueError(f"{what} must be one of {allowed}, got {value!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive (bins), got {sigma}")
        if not (isinstance(k, int) and 1 <= k <= min(self.heatmap_size)):
            raise ValueError(f"k must be an integer in [1, {min(self.heatmap_size)}] (the bins of the shorter "
                             f"axis), got {k!r}")
        self.split_ratio, self.label, self.sigma, self.normalize = float(split_ratio), label, float(sigma), normalize
        self.rounding, self.decoder, self.k = rounding, decoder, k

    @property
    def randomized(self) -> bool:
        return self.rounding == "random"

    # -- encoding -----------------------------------------------------------------------------

    def _prepare(self, keypoints, visible) -> tuple[Tensor, Tensor, Tensor]:
        """``uv`` (bin units) as given, a copy safe to compute with (masked rows at 0), the weights."""
        uv, weights = self.prepare(keypoints, visible)
        reach = on_grid(uv, self.heatmap_size) if self.randomized else on_grid(torch.floor(uv + 0.5), self.heatmap_size)
        weights = weights * reach
        return uv, torch.where(weights[..., None] > 0, uv, torch.zeros_like(uv)), weights

    def _profiles(self, bins: Tensor) -> tuple[Tensor, Tensor]:
        """The labels (N, K, Wx), (N, K, Hy) of integer ``bins`` (N, K, 2)."""
        xs, ys = cell_coordinates(self.heatmap_size, bins.device)
        if self.label == "onehot":
            return (xs == bins[..., 0:1]).float(), (ys == bins[..., 1:2]).float()
        scale = 1 / (self.sigma * (2 * torch.pi) ** 0.5) if self.normalize else 1.0
        return (scale * torch.exp(-((xs - bins[..., 0:1]) ** 2) / (2 * self.sigma**2)),
                scale * torch.exp(-((ys - bins[..., 1:2]) ** 2) / (2 * self.sigma**2)))

    def encode(self, keypoints, visible=None, *, generator: torch.Generator | None = None,
               uniforms: Tensor | None = None) -> Target:
        """Labels on the rounded bin, or on one randomized-rounding draw (``generator``, on the
        keypoints' device, makes it reproducible; ``uniforms`` fixes it)."""
        uv, safe, weights = self._prepare(keypoints, visible)
        bins = (randomized_cells(safe, self.heatmap_size, generator, uniforms) if self.randomized
                else torch.floor(safe + 0.5))
        px, py = self._profiles(bins)
        w = weights[..., None]
        return Target(None, uv, weights, px * w, py * w)

    def expected_target(self, keypoints: Tensor, visible: Tensor | None = None) -> Target:
        """The expectation of :meth:`encode` over its draws: per axis ``(1 - f)`` times the label
        of the lower bin plus ``f`` times that of the upper one (the rounded label where nothing
        is drawn)."""
        if not self.randomized:
            return self.encode(keypoints, visible)
        uv, safe, weights = self._prepare(keypoints, visible)
        lower, frac = lower_and_fraction(safe, self.heatmap_size)
        lo_x, lo_y = self._profiles(lower)
        hi_x, hi_y = self._profiles(lower + 1)
        fx, fy, w = frac[..., 0:1], frac[..., 1:2], weights[..., None]
        return Target(None, uv, weights, ((1 - fx) * lo_x + fx * hi_x) * w, ((1 - fy) * lo_y + fy * hi_y) * w)

    # -- decoding -----------------------------------------------------------------------------

    def decode(self, output: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """``(x_logits (N, K, Wx), y_logits (N, K, Hy))`` -> keypoints (N, K, 2) in input pixels,
        scores (N, K)."""
        if not (isinstance(output, (tuple, list)) and len(output) == 2):
            raise ValueError(f"SimCC decodes a pair (x_logits (N, K, {self.heatmap_size[0]}), y_logits "
                             f"(N, K, {self.heatmap_size[1]})), got {type(output).__name__}")
        x, y = output
        for logits, bins, axis in ((x, self.heatmap_size[0], "x"), (y, self.heatmap_size[1], "y")):
            if logits.ndim != 3 or logits.shape[-1] != bins or logits.shape[:2] != x.shape[:2]:
                raise ValueError(f"{axis}_logits must have shape (N, K, {bins}), got {tuple(logits.shape)}; "
                                 f"x {tuple(x.shape)}, y {tuple(y.shape)}")
        (u, su), (v, sv) = self.decode_axis(x.float()), self.decode_axis(y.float())
        return self.to_input(torch.stack([u, v], dim=-1)), torch.minimum(su, sv)

    def decode_axis(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (N, K, B) of one axis -> the bin coordinate (N, K) and the maximal logit (N, K)."""
        if self.decoder == "argmax" or self.k == 1:
            scores, index = logits.max(-1)
            return index.float(), scores
        values, index = logits.topk(self.k, dim=-1)
        # summed as offsets from the top bin: small terms, small rounding
        offsets = (values.softmax(-1) * (index - index[..., :1]).float()).sum(-1)
        return index[..., 0].float() + offsets, values[..., 0]

    def scores_from_probabilities(self, labels: Tensor) -> Tensor:
        """What the decoder should be given for labels of probabilities (an expected label):
        ``log p``, since the softmax of it is ``p / sum p`` over the selected bins."""
        return labels.float().clamp_min(torch.finfo(torch.float32).tiny).log()

    def degenerate(self) -> str | None:
        """Degenerate where the top k are every bin of an axis: a softmax mean over the axis."""
        if self.decoder != "topk" or self.k < min(self.heatmap_size):
            return None
        return (f"{self.heatmap_size[0]}×{self.heatmap_size[1]} bins: the top {self.k} are every bin of an axis, "
                "a softmax mean over the whole axis")
