"""UDP: unbiased data processing (Huang et al., CVPR 2020).

UDP's point is the coordinate system: input and heatmap are aligned on their first and last pixel
centres, ``u = x (Wh - 1) / (W - 1)`` (``align="udp"``, see :mod:`h3r.geometry`), so resizing
and flipping introduce no offset. On that grid it draws a Gaussian at the exact point and decodes
with DARK's modulation and Taylor step, using the finite differences of UDP's reference code
(stencil ``"udp"`` of :func:`h3r.codecs.dark.newton_step`); there is no quarter shift.
"""
from __future__ import annotations

from torch import Tensor

from h3r.codecs.base import argmax_2d, register_codec
from h3r.codecs.dark import DARK

REFINEMENTS = ("dark", "none")


@register_codec(presets={"udp": {"sigma": True}})
class UDP(DARK):
    """Gaussian at the exact point on the UDP grid; argmax + optional DARK-style refinement.

    Args:
        input_size, heatmap_size: ``(width, height)``; the heatmap needs at least 2x2 cells.
        sigma, blur_kernel, eps, stencil: as :class:`DARK` (default stencil ``"udp"``).
        refine: ``"dark"`` (modulation + Taylor step) or ``"none"`` (plain argmax).
        align: default ``"udp"``.

    Representable: as :class:`DARK`, the centre lies on ``[-1/2, Wh - 1/2]``. Unlike UDP's code
    (which pads the log-heatmap by edge replication and always steps), a peak on the border cell
    or with a Hessian that is not negative definite keeps its argmax.
    """

    name = "udp"
    align = "udp"
    stencil = "udp"

    def __init__(self, input_size, heatmap_size, sigma: float = 2.0, blur_kernel: int | None = None,
                 eps: float = 1e-10, refine: str = "dark", stencil: str | None = None,
                 align: str | None = None):
        super().__init__(input_size, heatmap_size, sigma=sigma, blur_kernel=blur_kernel, eps=eps,
                         stencil=stencil, align=align)
        if refine not in REFINEMENTS:
            raise ValueError(f"refine must be one of {REFINEMENTS}, got {refine!r}")
        self.refine = refine

    def decode_heatmap_units(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        peaks, scores = argmax_2d(heatmaps)
        if self.refine == "none":
            return peaks, scores
        return peaks + self.refine_offsets(heatmaps, peaks), scores

    def degenerate(self) -> str | None:
        """As :meth:`DARK.degenerate`; never without refinement, which is the argmax by choice."""
        return None if self.refine == "none" else super().degenerate()
