"""H3R: heatmap regression via randomized rounding (Yu & Tao, TPAMI 2021).

Encoding. Per axis, a keypoint ``u`` (heatmap units) lies between the integer cells ``l`` and
``l + 1`` with fractional part ``f = u - l``. Randomized rounding activates ``l + 1`` with
probability ``f`` and ``l`` otherwise, independently per axis, so the activation point is one of
the 4 neighbours with probabilities ``(1-fx)(1-fy), fx(1-fy), (1-fx)fy, fx fy`` and its expectation
is ``u`` exactly: the fractional part survives in distribution instead of being rounded away.
Averaged over draws the target is the bilinear (one-hot) or Gaussian-mixture map of
:meth:`H3R.expected_target`.

Decoding. From a set ``S`` of activation points (the top-k cells, or a window around the argmax),
``u = sum_{i in S} w_i i`` with ``w = softmax(h_S)`` (for logits, as the official code) or
``w = h_S / sum h_S`` (for probabilities, the paper's expectation). As ``softmax(log h) = h / sum h``
both weightings recover the expected target exactly; for ``softmax`` pass ``log`` of the map,
with its zeros replaced by a large negative number.

The official decoder (github.com/baoshengyu/H3R, ``heatmap2coord``) is top-9, softmax over the
raw foreground logits, then index times stride: ``H3R(..., k=9, weighting="softmax",
align="corner")``, preset ``"h3r-official"``.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor

from h3r.codecs.base import (Codec, Target, argmax_2d, cell_coordinates, gather_2d, gaussian_profiles, map_label,
                             on_grid, outer, register_codec, topk_2d)
from h3r.geometry import Size

TARGETS = ("onehot", "gaussian", "bilinear")
SELECTIONS = ("topk", "window")
WEIGHTINGS = ("softmax", "normalized", "sigmoid")
CORNERS = ((0, 0), (1, 0), (0, 1), (1, 1))  # the 4 neighbours as offsets from the lower one


@functools.cache
def window_offsets(radius: int, device: torch.device) -> Tensor:
    """The (2r+1)^2 cells of a square window as float (dx, dy) offsets, (0, 0) first, then by
    growing L1 distance; a constant per radius and device."""
    steps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    window = torch.stack(torch.meshgrid(steps, steps, indexing="xy"), dim=-1).reshape(-1, 2)
    return window[window.abs().sum(-1).argsort(stable=True)].to(device)


def lower_and_fraction(uv: Tensor, heatmap_size: Size) -> tuple[Tensor, Tensor]:
    """Lower neighbour ``l`` (N, K, 2) and fraction ``f = u - l`` in [0, 1] for ``0 <= u <= Wh - 1``.

    ``l`` is capped at ``Wh - 2`` so that ``l + 1`` stays on the grid: ``u = Wh - 1`` gives
    ``l = Wh - 2, f = 1`` and draws the last cell with certainty.
    """
    last = torch.tensor(heatmap_size, device=uv.device, dtype=uv.dtype) - 1
    lower = torch.minimum(torch.floor(uv), last - 1)
    return lower, uv - lower


def randomized_cells(uv: Tensor, heatmap_size: Size, generator: torch.Generator | None = None,
                     uniforms: Tensor | None = None) -> Tensor:
    """One randomized-rounding draw per keypoint: the cell ``l + B`` (N, K, 2), ``B ~ Bernoulli(f)``
    per axis, for ``uv`` (N, K, 2) with ``0 <= u <= Wh - 1``, ``B = [U < f]``. ``generator`` (on
    ``uv``'s device) makes the draws reproducible; ``uniforms`` (N, K, 2) in [0, 1) are the ``U``
    themselves (the same ``U`` for a sample seen again: one draw kept for every epoch)."""
    lower, frac = lower_and_fraction(uv, heatmap_size)
    if uniforms is not None:
        if uniforms.shape != uv.shape:
            raise ValueError(f"uniforms must have the keypoints' shape {tuple(uv.shape)}, got {tuple(uniforms.shape)}")
        return lower + (uniforms.to(uv.device) < frac)
    if generator is not None and generator.device.type != uv.device.type:
        raise ValueError(f"the generator lives on {generator.device} but the keypoints on "
                         f"{uv.device}; create it with torch.Generator(device={str(uv.device)!r})")
    return lower + (torch.rand(uv.shape, generator=generator, device=uv.device) < frac)


def rounding_neighbours(uv: Tensor, heatmap_size: Size) -> tuple[Tensor, Tensor]:
    """The 4 cells randomized rounding can activate and their probabilities.

    uv (N, K, 2) heatmap units with ``0 <= u <= Wh - 1`` (outside that range the probabilities
    are meaningless; :meth:`H3R.encode` masks such keypoints) -> cells (N, K, 4, 2) in the order
    ``(l, l), (l+1, l), (l, l+1), (l+1, l+1)`` (x, y) and probabilities (N, K, 4) summing to 1.
    """
    lower, frac = lower_and_fraction(uv, heatmap_size)
    corners = torch.tensor(CORNERS, device=uv.device, dtype=uv.dtype)  # (4, 2)
    cells = lower[..., None, :] + corners
    per_axis = torch.where(corners > 0, frac[..., None, :], 1 - frac[..., None, :])
    return cells, per_axis.prod(-1)


@register_codec(presets={
    "h3r": {"loss": "spatial_ce", "target": "expected"},
    "h3r-official": {"args": {"select": "topk", "k": 9, "weighting": "softmax", "align": "corner"},
                     "loss": "binary_ce", "target": "expected"},
    # the 3x3 window around the argmax: the top 9 of the whole map average two joints' peaks where a
    # network is unsure which is which (a left and a right wrist), a window reads one of them
    "h3r-window": {"args": {"select": "window", "radius": 1}, "loss": "spatial_ce", "target": "expected"},
})
class H3R(Codec):
    """Randomized-rounding encoder; weighted decoding from a set of activation points.

    Args:
        input_size, heatmap_size: ``(width, height)``; the heatmap needs at least 2x2 cells.
        target: ``"onehot"`` (the paper), ``"gaussian"`` (a Gaussian of ``sigma`` cells on the
            drawn cell), or ``"bilinear"``: no draw, the one-hot target's expectation (the
            bilinear weights on the 4 neighbours) every time, a soft and deterministic target.
        sigma: Gaussian standard deviation in cells (``target="gaussian"`` only).
        select: ``"topk"`` (the ``k`` highest cells) or ``"window"`` (the ``2 radius + 1`` square
            around the argmax; cells off the grid are left out).
        k, radius: size of the selection.
        weighting: ``"softmax"`` over the selected raw values (logits) or ``"normalized"``
            ``h_i / sum h_i`` (probabilities; negative values count as 0, and a selection with
            no mass decodes to its argmax), or ``"sigmoid"`` ``s_i / sum s_i`` with ``s = sigmoid(h)``
            (the logits of a one-channel sigmoid head read as the probabilities it trains).
        align: coordinate alignment (default ``"center"``).

    Representable: both neighbours on the grid on each axis, ``0 <= u <= Wh - 1``; under the
    default alignment that drops the outer half cell of the image. Scores: the heatmap's maximum
    (raw value, a logit for ``weighting="softmax"``).
    """

    name = "h3r"

    def __init__(self, input_size, heatmap_size, target: str = "onehot", sigma: float = 2.0,
                 select: str = "topk", k: int = 9, radius: int = 1, weighting: str = "softmax",
                 align: str | None = None):
        super().__init__(input_size, heatmap_size, align)
        wh, hh = self.heatmap_size
        if wh < 2 or hh < 2:
            raise ValueError(f"H3R needs a heatmap of at least 2x2 cells, got {self.heatmap_size}")
        for value, allowed, what in ((target, TARGETS, "target"), (select, SELECTIONS, "select"),
                                     (weighting, WEIGHTINGS, "weighting")):
            if value not in allowed:
                raise ValueError(f"{what} must be one of {allowed}, got {value!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if not (isinstance(k, int) and 1 <= k <= wh * hh):
            raise ValueError(f"k must be an integer in [1, {wh * hh}] (the heatmap's cells), got {k!r}")
        if not (isinstance(radius, int) and radius >= 0):
            raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
        self.target, self.sigma = target, float(sigma)
        self.select, self.k, self.radius, self.weighting = select, k, radius, weighting

    # -- encoding -----------------------------------------------------------------------------

    @property
    def randomized(self) -> bool:
        return True

    def _prepare(self, keypoints, visible) -> tuple[Tensor, Tensor, Tensor]:
        """``uv`` as given, a copy safe to compute with (masked rows at 0), and the weights."""
        uv, weights = self.prepare(keypoints, visible)
        weights = weights * on_grid(uv, self.heatmap_size)
        return uv, torch.where(weights[..., None] > 0, uv, torch.zeros_like(uv)), weights

    def _profiles(self, cells: Tensor) -> tuple[Tensor, Tensor]:
        """Per-axis target profiles (N, K, Wh), (N, K, Hh) of integer ``cells`` (N, K, 2)."""
        if self.target == "gaussian":
            return gaussian_profiles(cells, self.heatmap_size, self.sigma)
        xs, ys = cell_coordinates(self.heatmap_size, cells.device)
        return (xs == cells[..., 0:1]).float(), (ys == cells[..., 1:2]).float()

    def encode(self, keypoints, visible=None, *, generator: torch.Generator | None = None,
               uniforms: Tensor | None = None) -> Target:
        """One randomized-rounding draw per keypoint; ``generator`` (on the keypoints' device)
        makes it reproducible, ``uniforms`` fixes it (:func:`randomized_cells`). ``target="bilinear"``
        gives the expectation instead, with no draw."""
        if self.target == "bilinear":
            return self.expected_target(keypoints, visible)
        uv, safe, weights = self._prepare(keypoints, visible)
        px, py = self._profiles(randomized_cells(safe, self.heatmap_size, generator, uniforms))
        return Target(outer(px * weights[..., None], py), uv, weights)

    def expected_target(self, keypoints: Tensor, visible: Tensor | None = None) -> Target:
        """The expectation of :meth:`encode` over the draws: bilinear weights on the 4 neighbours
        (one-hot) or the mixture of their 4 Gaussians. Separable, since the axes are independent."""
        uv, safe, weights = self._prepare(keypoints, visible)
        lower, frac = lower_and_fraction(safe, self.heatmap_size)
        lo_x, lo_y = self._profiles(lower)
        hi_x, hi_y = self._profiles(lower + 1)
        fx, fy = frac[..., 0:1], frac[..., 1:2]
        px = ((1 - fx) * lo_x + fx * hi_x) * weights[..., None]
        return Target(outer(px, (1 - fy) * lo_y + fy * hi_y), uv, weights)

    # -- decoding -----------------------------------------------------------------------------

    def scores_from_probabilities(self, heatmaps: Tensor) -> Tensor:
        """What the decoder should be given for heatmaps of probabilities (a target, an average
        of targets): ``log p`` for softmax weighting, since ``softmax(log p) = p / sum p`` over the
        selected cells (zeros become a very negative logit), ``log p / (1 - p)`` for sigmoid, and
        ``p`` itself for normalized."""
        if self.weighting == "normalized":
            return heatmaps
        p = heatmaps.float().clamp_min(torch.finfo(torch.float32).tiny)
        if self.weighting == "sigmoid":
            p = p.clamp_max(1 - torch.finfo(torch.float32).eps)  # a certain cell: a large finite logit
            return p.log() - (1 - p).log()
        return p.log()

    def activation_points(self, heatmaps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The selected cells (N, K, S, 2), their values (N, K, S) and validity (N, K, S) bool.

        The first point holds the maximum (for ``"window"``, the argmax).
        """
        if self.select == "topk":
            cells, values = topk_2d(heatmaps, self.k)
            return cells, values, torch.ones_like(values, dtype=torch.bool)
        peaks, _ = argmax_2d(heatmaps)
        cells = peaks[..., None, :] + window_offsets(self.radius, heatmaps.device)
        return cells, gather_2d(heatmaps, cells), on_grid(cells, self.heatmap_size)

    def point_weights(self, values: Tensor, valid: Tensor) -> Tensor:
        """Weights (N, K, S) summing to 1 over the valid points."""
        if self.weighting == "softmax":
            return values.masked_fill(~valid, float("-inf")).softmax(dim=-1)
        mass = (values.sigmoid() if self.weighting == "sigmoid" else values.clamp_min(0)) * valid
        total = mass.sum(-1, keepdim=True)
        argmax_only = torch.zeros_like(mass)
        argmax_only[..., 0] = 1
        return torch.where(total > 0, mass / torch.where(total > 0, total, 1), argmax_only)

    def decode_heatmap_units(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        cells, values, valid = self.activation_points(heatmaps)
        peak = cells[..., :1, :]  # summed as offsets from the argmax: small terms, small rounding
        uv = peak[..., 0, :] + (self.point_weights(values, valid)[..., None] * (cells - peak)).sum(-2)
        return uv, values[..., 0]

    def degenerate(self) -> str | None:
        """Degenerate where the top k are every cell of the map (a larger k is refused when the
        codec is built): nothing is selected, the decoder is a weighted mean over the whole map."""
        cells = self.heatmap_size[0] * self.heatmap_size[1]
        if self.select != "topk" or self.k < cells:
            return None
        return f"{map_label(self.heatmap_size)}: the top {self.k} are all its cells, a weighted mean over the whole map"
