"""Soft-argmax: integral regression (Sun et al., ECCV 2018).

The heatmap is normalised into a distribution over cells, ``p = softmax(beta * h)`` over all
``Hh * Wh`` cells, and the keypoint is its expectation ``u = sum_i p_i i`` (per axis, from the
marginals). The result is differentiable, so the loss is put on the coordinates and there is no
heatmap target.
"""
from __future__ import annotations

import torch
from torch import Tensor

from h3r.codecs.base import Codec, Target, argmax_2d, grid, on_grid


class SoftArgmax(Codec):
    """Coordinates as the expectation of the grid under ``softmax(beta * heatmap)``.

    Args:
        input_size, heatmap_size: ``(width, height)``.
        beta: inverse temperature applied to the heatmap before the softmax.
        align: coordinate alignment (default ``"center"``).

    ``encode`` returns ``Target(heatmaps=None, keypoints=uv, weights)``: the loss compares decoded
    and target coordinates. Representable: an expectation of cell centres lies in their hull,
    ``0 <= u <= Wh - 1``. Scores: the heatmap's maximum (raw, before the softmax).
    """

    name = "soft-argmax"

    def __init__(self, input_size, heatmap_size, beta: float = 1.0, align: str | None = None):
        super().__init__(input_size, heatmap_size, align)
        if not beta > 0:
            raise ValueError(f"beta must be positive, got {beta}")
        self.beta = float(beta)

    def encode(self, keypoints, visible=None, *, generator=None) -> Target:
        uv, weights = self.prepare(keypoints, visible)
        return Target(None, uv, weights * on_grid(uv, self.heatmap_size))

    def decode_heatmap_units(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        n, k, hh, wh = heatmaps.shape
        p = (self.beta * heatmaps).reshape(n, k, hh * wh).softmax(-1).view(n, k, hh, wh)
        xs, ys = grid(self.heatmap_size, heatmaps.device)
        peaks, scores = argmax_2d(heatmaps)
        # the mean of each marginal, summed as offsets from the peak: small terms, small rounding
        du = (p.sum(-2) * (xs - peaks[..., 0:1])).sum(-1)
        dv = (p.sum(-1) * (ys - peaks[..., 1:2])).sum(-1)
        return peaks + torch.stack([du, dv], dim=-1), scores
