"""DARK: distribution-aware coordinate representation (Zhang et al., CVPR 2020).

Encoding is *unbiased*: the Gaussian is centred on the exact sub-cell point, not on a rounded
cell. Decoding assumes the heatmap is a Gaussian, so its log is a quadratic ``P(p)`` whose
maximum ``mu`` satisfies, expanding at the integer peak ``m``,

.. math::  \\mu = m - \\left(\\nabla^2 P(m)\\right)^{-1} \\nabla P(m),

one Newton step, exact for a noiseless Gaussian. A predicted heatmap is first *modulated*: blurred
by a Gaussian of the training sigma (zero padding), which makes it closer to a Gaussian.
Derivatives are finite differences of ``log`` of the modulated map. DARK's code also rescales the
blurred map to its original maximum; that adds a constant to the log, which every finite
difference cancels, so it is left out.

The step is taken only where it is a step toward a maximum: the peak must have the stencil's
neighbours on the grid and the Hessian must be negative definite. Elsewhere the argmax stands.
No offset is clamped.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from h3r.codecs.base import (Codec, Target, argmax_2d, gaussian_heatmaps, gaussian_profiles, map_label, on_grid, outer,
                             register_codec, windows)
from h3r.codecs.h3r import lower_and_fraction, randomized_cells

STENCILS = ("dark", "udp")
#: where the target's Gaussian is centred: the exact point (DARK), or a cell of randomized rounding
CENTERS = ("exact", "randomized")


@functools.cache
def blur_matrix(sigma: float, kernel_size: int, size: int, device: torch.device) -> Tensor:
    """(size, size): row ``i`` holds the sampled, normalised Gaussian of ``sigma`` cells truncated
    to ``kernel_size`` (odd) taps, centred on column ``i``; ``matrix @ v`` blurs ``v`` (size,) with
    zero padding. A constant per argument set, shared: do not modify it."""
    half = kernel_size // 2
    t = torch.arange(-half, half + 1, dtype=torch.float32)
    taps = torch.exp(-(t**2) / (2 * sigma**2))
    taps = taps / taps.sum()
    lag = torch.arange(size) - torch.arange(size)[:, None] + half
    return torch.where((lag >= 0) & (lag < kernel_size), taps[lag.clamp(0, kernel_size - 1)], 0.0).to(device)


def modulated_neighbourhood(heatmaps: Tensor, peaks: Tensor, sigma: float, kernel_size: int,
                            radius: int = 2) -> Tensor:
    """DARK's modulation (Gaussian blur, zero padding) of heatmaps (N, K, Hh, Wh) around integer
    ``peaks`` (N, K, 2): (N, K, 2r+1, 2r+1), ``[r + dy, r + dx]`` at the cell ``peak + (dx, dy)``
    where that cell is on the grid (elsewhere a finite value of no meaning; callers check the
    stencil's reach).

    The blur of the patch reads the cells within ``r + kernel_size // 2`` of the peak. That window
    is copied once, moved onto the grid where it sticks out (the cells it gives up are off the
    grid: zeros), blurred along x by one constant matrix, and the patch's 2r+1 columns of that are
    blurred along y; so the cost per keypoint does not grow with the heatmap.
    """
    n, k, hh, wh = heatmaps.shape
    reach, side = radius + kernel_size // 2, 2 * radius + 1
    sx, sy = min(2 * reach + 1, wh), min(2 * reach + 1, hh)
    x, y = peaks[..., 0].long(), peaks[..., 1].long()
    x0, y0 = (x - reach).clamp(0, wh - sx), (y - reach).clamp(0, hh - sy)  # the window's corner
    window = windows(heatmaps, torch.stack([x0, y0], dim=-1), (sx, sy))  # (N, K, sy, sx)
    steps = torch.arange(-radius, radius + 1, device=heatmaps.device)
    cols = ((x - x0)[..., None] + steps).clamp(0, sx - 1)  # the patch in window coordinates, (N, K, 2r+1)
    rows = ((y - y0)[..., None] + steps).clamp(0, sy - 1)
    along_x = window @ blur_matrix(sigma, kernel_size, sx, heatmaps.device).T  # one GEMM
    along_x = along_x.gather(3, cols[..., None, :].expand(n, k, sy, side)).transpose(-1, -2)  # (N, K, x, y)
    blurred = along_x @ blur_matrix(sigma, kernel_size, sy, heatmaps.device).T  # (N, K, x, y)
    return blurred.gather(3, rows[..., None, :].expand(n, k, side, side)).transpose(-1, -2)


#: how far each stencil reads from the peak, in cells
STENCIL_REACH = {"dark": 2, "udp": 1}


def newton_step(log_patch: Tensor, stencil: str = "dark") -> tuple[Tensor, Tensor]:
    """The Newton step ``-H^{-1} g`` at the centre of ``log_patch`` (N, K, 2r+1, 2r+1) (see
    :func:`modulated_neighbourhood`; ``r`` at least the stencil's reach), and where ``H`` is
    negative definite (N, K) bool; the step is 0 elsewhere.

    ``stencil`` picks the finite differences of each method's reference code; both are exact on a
    quadratic and read ``dx = (f[+1] - f[-1]) / 2``:

    ``"dark"`` (DARK): ``dxx = (f[+2] - 2 f[0] + f[-2]) / 4``, the cross term from the four
    diagonal neighbours; reaches 2 cells.
    ``"udp"`` (UDP): ``dxx = f[+1] - 2 f[0] + f[-1]`` and a 7-point cross term; reaches 1 cell.
    Its cross term reads the (+1, +1) and (-1, -1) diagonals only, so it is not mirror
    symmetric: on a noisy map, decoding the mirrored map differs from the mirrored decode
    (by about 1e-3 cells in our tests; 0 on a quadratic).
    """
    if stencil not in STENCILS:
        raise ValueError(f"stencil must be one of {STENCILS}, got {stencil!r}")

    c = log_patch.shape[-1] // 2

    def f(dx: int, dy: int) -> Tensor:
        return log_patch[..., c + dy, c + dx]

    dx = (f(1, 0) - f(-1, 0)) / 2
    dy = (f(0, 1) - f(0, -1)) / 2
    if stencil == "dark":
        dxx = (f(2, 0) - 2 * f(0, 0) + f(-2, 0)) / 4
        dyy = (f(0, 2) - 2 * f(0, 0) + f(0, -2)) / 4
        dxy = (f(1, 1) - f(-1, 1) - f(1, -1) + f(-1, -1)) / 4
    else:
        dxx = f(1, 0) - 2 * f(0, 0) + f(-1, 0)
        dyy = f(0, 1) - 2 * f(0, 0) + f(0, -1)
        dxy = (f(1, 1) - f(1, 0) - f(0, 1) + 2 * f(0, 0) - f(-1, 0) - f(0, -1) + f(-1, -1)) / 2
    det = dxx * dyy - dxy**2
    concave = (dxx < 0) & (det > 0)
    det = torch.where(concave, det, torch.ones_like(det))
    # -H^{-1} g with H^{-1} = [[dyy, -dxy], [-dxy, dxx]] / det
    step = torch.stack([dxy * dy - dyy * dx, dxy * dx - dxx * dy], dim=-1) / det[..., None]
    return step * concave[..., None], concave


def default_kernel_size(sigma: float) -> int:
    """The odd blur size covering +-3 sigma: ``2 ceil(3 sigma) + 1`` (13 taps for sigma 2)."""
    return 2 * math.ceil(3 * sigma) + 1


@register_codec(presets={
    "dark": {"sigma": True},
    "gauss-random": {"args": {"center": "randomized"}, "target": "expected", "sigma": True},
})
class DARK(Codec):
    """Gaussian at the exact point; argmax + modulation + second-order Taylor refinement.

    Args:
        input_size, heatmap_size: ``(width, height)``.
        sigma: Gaussian standard deviation in heatmap cells (target and modulation).
        blur_kernel: odd size of the modulation kernel; default ``2 ceil(3 sigma) + 1``
            (mmpose uses 11 for sigma 2, i.e. +-2.5 sigma).
        eps: floor applied before the log (DARK's code: 1e-10; values below it carry no shape).
        stencil: finite differences of the Taylor step, ``"dark"`` (default) or ``"udp"``, see
            :func:`newton_step`.
        center: ``"exact"`` (DARK: the Gaussian on the exact point) or ``"randomized"`` (on one
            randomized-rounding draw of it, the Gaussian twin of H3R's one-hot target; preset
            ``"gauss-random"``). The decoder is the same.
        align: coordinate alignment (default ``"center"``; DARK's code and mmpose use ``"corner"``).

    Representable: the centre lies on the heatmap's extent, ``-1/2 <= u <= Wh - 1/2``; the
    Gaussian is drawn exactly there, clipped by nothing but the grid. Scores: the heatmap's
    maximum (before modulation).
    """

    name = "dark"
    stencil = "dark"

    def __init__(self, input_size, heatmap_size, sigma: float = 2.0, blur_kernel: int | None = None,
                 eps: float = 1e-10, stencil: str | None = None, align: str | None = None,
                 center: str = "exact"):
        super().__init__(input_size, heatmap_size, align)
        if center not in CENTERS:
            raise ValueError(f"center must be one of {CENTERS}, got {center!r}")
        self.center = center
        stencil = type(self).stencil if stencil is None else stencil
        if stencil not in STENCILS:
            raise ValueError(f"stencil must be one of {STENCILS}, got {stencil!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        blur_kernel = default_kernel_size(sigma) if blur_kernel is None else blur_kernel
        if not (isinstance(blur_kernel, int) and blur_kernel > 0 and blur_kernel % 2 == 1):
            raise ValueError(f"blur_kernel must be a positive odd integer, got {blur_kernel!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.sigma, self.blur_kernel, self.eps, self.stencil = float(sigma), blur_kernel, float(eps), stencil

    @property
    def randomized(self) -> bool:
        return self.center == "randomized"

    def encode(self, keypoints, visible=None, *, generator=None, uniforms=None) -> Target:
        """A Gaussian at the exact point, or (``center="randomized"``) at one randomized-rounding
        draw of it (:func:`h3r.codecs.h3r.randomized_cells`; ``generator`` makes it reproducible,
        ``uniforms`` fixes it)."""
        uv, weights, centers = self._centers(keypoints, visible)
        if self.center == "randomized":
            centers = randomized_cells(centers, self.heatmap_size, generator, uniforms)
        return Target(gaussian_heatmaps(centers, self.heatmap_size, self.sigma, weights), uv, weights)

    def expected_target(self, keypoints, visible=None) -> Target:
        """The expectation of :meth:`encode` over its draws: the exact Gaussian, or for
        ``center="randomized"`` the mixture of the Gaussians on the 4 rounding neighbours with
        their bilinear weights (separable, as the axes are drawn independently)."""
        if self.center == "exact":
            return self.encode(keypoints, visible)
        uv, weights, centers = self._centers(keypoints, visible)
        lower, frac = lower_and_fraction(centers, self.heatmap_size)
        lo_x, lo_y = gaussian_profiles(lower, self.heatmap_size, self.sigma)
        hi_x, hi_y = gaussian_profiles(lower + 1, self.heatmap_size, self.sigma)
        fx, fy = frac[..., 0:1], frac[..., 1:2]
        px = ((1 - fx) * lo_x + fx * hi_x) * weights[..., None]
        return Target(outer(px, (1 - fy) * lo_y + fy * hi_y), uv, weights)

    def _centers(self, keypoints, visible) -> tuple[Tensor, Tensor, Tensor]:
        """``uv`` as given, the weights, and a copy of ``uv`` safe to compute with (masked rows at 0).
        Representable: the heatmap's extent for an exact centre, the hull of the cell centres
        (both rounding neighbours on the grid) for a randomized one."""
        uv, weights = self.prepare(keypoints, visible)
        weights = weights * on_grid(uv, self.heatmap_size, margin=0.5 if self.center == "exact" else 0.0)
        return uv, weights, torch.where(weights[..., None] > 0, uv, torch.zeros_like(uv))

    def refine_offsets(self, heatmaps: Tensor, peaks: Tensor) -> Tensor:
        """Sub-cell offsets (N, K, 2) for integer ``peaks`` (N, K, 2) of ``heatmaps``: the Newton
        step of the log-modulated map, 0 where the stencil leaves the grid or it is not concave."""
        reach = STENCIL_REACH[self.stencil]
        patch = modulated_neighbourhood(heatmaps, peaks, self.sigma, self.blur_kernel, radius=reach)
        step, _ = newton_step(patch.clamp_min(self.eps).log(), self.stencil)
        inside = on_grid(peaks, self.heatmap_size, margin=-reach)
        return step * inside[..., None]

    def decode_heatmap_units(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        peaks, scores = argmax_2d(heatmaps)
        return peaks + self.refine_offsets(heatmaps, peaks), scores

    def degenerate(self) -> str | None:
        """Degenerate where no cell lies the stencil's reach (2 cells for ``"dark"``, 1 for
        ``"udp"``) from the border on both axes: no peak takes the Taylor step (see
        :meth:`refine_offsets`), so the decoder is the argmax. A map smaller than the blur kernel
        is not degenerate by itself: the step is still taken, on a map blurred with zero padding."""
        reach = STENCIL_REACH[self.stencil]
        if min(self.heatmap_size) > 2 * reach:
            return None
        cells = f"{reach} cell{'s' if reach > 1 else ''}"
        return (f"{map_label(self.heatmap_size)}: {type(self).__name__}'s Taylor step needs the peak {cells} "
                f"from the border, which no cell is, so it decodes the argmax")
