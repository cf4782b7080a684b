"""Soft-argmax: integral regression (Sun et al., ECCV 2018).

The heatmap is normalised into a distribution over cells, ``p = softmax(beta * h)`` over all
``Hh * Wh`` cells, and the keypoint is its expectation ``u = sum_i p_i i`` (per axis, from the
marginals). The result is differentiable, so the loss is put on the coordinates and there is no
heatmap target.

Two presets decode with it. ``soft-argmax`` is integral regression as Sun et al. train it: an L1
loss on the coordinates alone (:func:`h3r.losses.l1_coords`), nothing constraining the map's
shape. ``dsnt`` (Nibali et al., "Numerical coordinate regression with convolutional neural
networks", 2018) is the same codec and decoder with DSNT's regulariser added to the loss
(:func:`h3r.losses.dsnt`): the Jensen-Shannon divergence between ``softmax(beta * h)`` and a
normalised Gaussian on the keypoint, which shapes the map into one blob.
"""
from __future__ import annotations

import torch
from torch import Tensor

from h3r.codecs.base import Codec, Target, argmax_2d, cell_coordinates, on_grid, register_codec

#: cells per chunk in :func:`exp_marginals` on CPU (4 MiB of float32)
CHUNK_CELLS = 2**20


@register_codec(presets={"soft-argmax": {"loss": "l1_coords"}, "dsnt": {"loss": "dsnt"}})
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
        peaks, scores = argmax_2d(heatmaps)
        along_x, along_y = exp_marginals(heatmaps, scores.detach(), self.beta)
        # the mean of each marginal, summed as offsets from the peak: small terms, small rounding
        xs, ys = cell_coordinates(self.heatmap_size, heatmaps.device)
        du = (along_x * (xs - peaks[..., 0:1])).sum(-1)
        dv = (along_y * (ys - peaks[..., 1:2])).sum(-1)
        return peaks + torch.stack([du, dv], dim=-1) / along_x.sum(-1, keepdim=True), scores


def exp_marginals(heatmaps: Tensor, maxima: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """Sums over y (N, K, Wh) and over x (N, K, Hh) of ``exp(beta (h - max))`` for heatmaps
    (N, K, Hh, Wh) and their maxima (N, K): the marginals of ``softmax(beta h)``, times its sum.

    On CPU the maps go in chunks of about :data:`CHUNK_CELLS` cells, whose exp stays in the cache
    (a temporary the size of the batch costs more than the arithmetic).
    """
    n, k, hh, wh = heatmaps.shape
    maps, shifts = heatmaps.reshape(-1, hh, wh), (-beta * maxima).reshape(-1, 1, 1)
    size = max(1, CHUNK_CELLS // (hh * wh) if heatmaps.device.type == "cpu" else len(maps))
    along_x, along_y = [], []
    for chunk, shift in zip(maps.split(size), shifts.split(size)):
        weights = torch.add(shift, chunk, alpha=beta).exp_()  # beta h - beta max
        along_x.append(weights.sum(-2))
        along_y.append(weights.sum(-1))
    return torch.cat(along_x).view(n, k, wh), torch.cat(along_y).view(n, k, hh)
