"""Vanilla heatmap regression: an integer activation point, decoded by argmax.

This is the quantisation the paper analyses (its Section 3): the keypoint ``u`` (heatmap units)
is replaced by an integer cell, ``floor(u)`` or ``round(u) = floor(u + 1/2)``, so decoding the
target returns that cell and loses the fractional part. The error per axis is ``u - floor(u)``
in ``[0, 1)`` (mean 1/2: biased) or ``u - round(u)`` in ``[-1/2, 1/2)`` (mean 0), times the
stride in input pixels.
"""
from __future__ import annotations

import torch
from torch import Tensor

from h3r.codecs.base import Codec, Target, argmax_2d, gaussian_heatmaps, on_grid, onehot_heatmaps, register_codec

QUANTIZERS = {"floor": torch.floor, "round": lambda u: torch.floor(u + 0.5)}
TARGETS = ("onehot", "gaussian")


@register_codec(presets={
    "argmax-floor": {"args": {"quantize": "floor", "target": "gaussian"}, "sigma": True},
    "argmax-round": {"args": {"quantize": "round", "target": "gaussian"}, "sigma": True},
    "onehot-round": {"args": {"quantize": "round", "target": "onehot"}, "loss": "spatial_ce"},
})
class Vanilla(Codec):
    """Integer encoding by ``floor`` or ``round``; one-hot or Gaussian target; argmax decoding.

    Args:
        input_size, heatmap_size: ``(width, height)``.
        quantize: ``"round"`` or ``"floor"``.
        target: ``"onehot"`` or ``"gaussian"`` (a Gaussian of ``sigma`` cells on the integer cell).
        sigma: Gaussian standard deviation in heatmap cells.
        align: coordinate alignment (default ``"center"``, see :mod:`h3r.geometry`).

    Representable: keypoints whose integer cell lies on the grid, ``0 <= q(u) <= Wh - 1``. On an
    image under the default alignment (``u`` in ``[-1/2, Wh - 1/2]``) that drops ``u = Wh - 1/2``
    for ``"round"`` and ``u < 0`` (the first half cell) for ``"floor"``.
    """

    name = "vanilla"

    def __init__(self, input_size, heatmap_size, quantize: str = "round", target: str = "gaussian",
                 sigma: float = 2.0, align: str | None = None):
        super().__init__(input_size, heatmap_size, align)
        if quantize not in QUANTIZERS:
            raise ValueError(f"quantize must be one of {tuple(QUANTIZERS)}, got {quantize!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.quantize, self.target, self.sigma = quantize, target, float(sigma)

    def quantized_cells(self, uv: Tensor) -> Tensor:
        """The integer cell (N, K, 2) each keypoint is encoded at."""
        return QUANTIZERS[self.quantize](uv)

    def encode(self, keypoints, visible=None, *, generator=None) -> Target:
        uv, weights = self.prepare(keypoints, visible)
        cells = self.quantized_cells(uv)
        weights = weights * on_grid(cells, self.heatmap_size)
        if self.target == "onehot":
            heatmaps = onehot_heatmaps(cells, self.heatmap_size, weights)
        else:
            heatmaps = gaussian_heatmaps(cells, self.heatmap_size, self.sigma, weights)
        return Target(heatmaps, uv, weights)

    def decode_heatmap_units(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        return argmax_2d(heatmaps)
