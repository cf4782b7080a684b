"""Argmax plus a quarter-cell shift: the decoding of Hourglass (Newell et al. 2016) and HRNet.

The target is a Gaussian on the *rounded* cell, as HRNet's data loader draws it
(``mu = int(u + 0.5)``), so the encoding keeps the quantisation error of :class:`Vanilla`. The
decoder takes the argmax and moves it a quarter cell toward the higher of its two neighbours on
each axis, a cheap guess at which side of the cell the true point lies on.
"""
from __future__ import annotations

import torch
from torch import Tensor

from h3r.codecs.base import argmax_2d, gather_2d, map_label, register_codec
from h3r.codecs.vanilla import Vanilla


def quarter_offsets(heatmaps: Tensor, peaks: Tensor) -> Tensor:
    """``+-1/4`` per axis toward the higher neighbour of each peak, 0 on a tie or at the border.

    heatmaps (N, K, Hh, Wh), peaks (N, K, 2) integer cells -> offsets (N, K, 2). An axis moves
    only where the peak has a neighbour on both sides (``0 < x < Wh - 1``). HRNet and mmpose test
    ``1 < x`` instead, so they never move a peak on cell 1; this is the one place they differ.
    """
    hh, wh = heatmaps.shape[-2:]
    unit = torch.eye(2, device=peaks.device)  # rows: +x, +y
    ahead = gather_2d(heatmaps, peaks[..., None, :] + unit)  # (N, K, 2)
    behind = gather_2d(heatmaps, peaks[..., None, :] - unit)
    last = torch.tensor([wh - 1, hh - 1], device=peaks.device)
    interior = (peaks > 0) & (peaks < last)
    return 0.25 * torch.sign(ahead - behind) * interior


@register_codec(presets={"argmax-quarter": {"sigma": True}})
class ArgmaxQuarter(Vanilla):
    """Gaussian target on the rounded cell; argmax decoding with a quarter-cell shift.

    Args:
        input_size, heatmap_size: ``(width, height)``.
        sigma: Gaussian standard deviation in heatmap cells.
        align: coordinate alignment (default ``"center"``; HRNet and mmpose use ``"corner"``).

    Representable: as :class:`Vanilla` with ``"round"``: the rounded cell lies on the grid.
    Scores: the heatmap's maximum.
    """

    name = "argmax-quarter"

    def __init__(self, input_size, heatmap_size, sigma: float = 2.0, align: str | None = None):
        super().__init__(input_size, heatmap_size, quantize="round", target="gaussian", sigma=sigma,
                         align=align)

    def decode_heatmap_units(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        peaks, scores = argmax_2d(heatmaps)
        return peaks + quarter_offsets(heatmaps, peaks), scores

    def degenerate(self) -> str | None:
        """A map under 3 cells along an axis: every peak lies on the border there, where the
        quarter shift does not move it (see :func:`quarter_offsets`)."""
        axes = [axis for axis, side in zip("xy", self.heatmap_size) if side < 3]
        if not axes:
            return None
        return (f"{map_label(self.heatmap_size)}: every cell lies on the border along {' and '.join(axes)}, "
                f"where the quarter shift does not move the peak")
