"""The interface every codec implements, and the batched pieces they share.

A codec turns keypoints into a training target (``encode``) and heatmaps back into keypoints
(``decode``). Shapes: ``N`` samples, ``K`` keypoints, heatmaps ``(N, K, Hh, Wh)``; keypoints are
``(N, K, 2)`` in input pixels (see :mod:`h3r.geometry` for the one coordinate convention).
Everything is batched torch, runs on whatever device its inputs live on, and computes in float32
whatever the input dtype (bfloat16 heatmaps are upcast; coordinates are always returned float32).

Bad input is never silently "fixed":

* a visible keypoint with a NaN or infinite coordinate raises ``ValueError`` naming it;
* keypoints that are invisible, off the image, or outside the range the codec can represent get
  weight 0 in the target (they are masked, never clipped or wrapped into a wrong pixel).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from h3r.config import register_presets
from h3r.geometry import Size, heatmap_to_input, in_frame, input_to_heatmap


@dataclass
class Target:
    """What an encoder hands to a loss.

    heatmaps:  (N, K, Hh, Wh) float32 training heatmaps, or None for coordinate-only codecs.
    keypoints: (N, K, 2) float32 keypoints in heatmap units (the codec's alignment); rows with
               weight 0 hold whatever was given and must not be used.
    weights:   (N, K) float32, 1 for keypoints the target represents, 0 for masked ones.
    x_labels, y_labels: (N, K, Wx), (N, K, Hy) float32 per-axis labels of a coordinate
               classification codec (:class:`h3r.codecs.simcc.SimCC`), else None; rows of
               weight 0 are all-zero.
    """

    heatmaps: Tensor | None
    keypoints: Tensor
    weights: Tensor
    x_labels: Tensor | None = None
    y_labels: Tensor | None = None

    def to(self, *args, **kwargs) -> "Target":
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(*args, **kwargs)

        return Target(move(self.heatmaps), move(self.keypoints), move(self.weights), move(self.x_labels),
                      move(self.y_labels))


class Codec:
    """Base class: stores the geometry and converts between input pixels and heatmap units.

    Subclasses implement :meth:`encode` and :meth:`decode_heatmap_units`; :meth:`decode` maps the
    latter back to input pixels. ``input_size`` and ``heatmap_size`` are ``(width, height)``.
    A codec whose head is not a heatmap head (:attr:`head`) overrides :meth:`decode` instead, and
    its ``heatmap_size`` is the grid its coordinates are counted in (SimCC's bins; RLE's one cell,
    the image).
    """

    name: str = "codec"
    #: the alignment (see :mod:`h3r.geometry`) this codec places heatmap cells with
    align: str = "center"
    #: the head whose output :meth:`decode` reads: ``"heatmap"`` (N, K, Hh, Wh), ``"simcc"``
    #: (x logits (N, K, Wx), y logits (N, K, Hy)) or ``"regression"`` (N, K, 4)
    head: str = "heatmap"

    def __init__(self, input_size: Size, heatmap_size: Size, align: str | None = None):
        self.input_size = _as_size(input_size, "input_size")
        self.heatmap_size = _as_size(heatmap_size, "heatmap_size")
        if align is not None:
            self.align = align
        input_to_heatmap(torch.zeros(2), self.input_size, self.heatmap_size, self.align)  # validates

    @property
    def stride(self) -> tuple[float, float]:
        return (self.input_size[0] / self.heatmap_size[0], self.input_size[1] / self.heatmap_size[1])

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    # -- the interface ----------------------------------------------------------------------

    def encode(self, keypoints: Tensor, visible: Tensor | None = None, *,
               generator: torch.Generator | None = None) -> Target:
        """Keypoints (N, K, 2) in input pixels (+ visibility (N, K)) -> :class:`Target`."""
        raise NotImplementedError

    def decode_heatmap_units(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        """Heatmaps (N, K, Hh, Wh) -> keypoints (N, K, 2) in heatmap units, scores (N, K)."""
        raise NotImplementedError

    def decode(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        """Heatmaps (N, K, Hh, Wh) -> keypoints (N, K, 2) in input pixels, scores (N, K)."""
        check_heatmaps(heatmaps, self.heatmap_size)
        uv, scores = self.decode_heatmap_units(heatmaps.float())
        return self.to_input(uv), scores

    @property
    def randomized(self) -> bool:
        """Whether :meth:`encode` draws its target at random (randomized rounding): its expected
        target, not one draw, is what a network trained on it can learn."""
        return False

    def degenerate(self) -> str | None:
        """Why this decoder cannot do on its heatmap size what it is meant to (e.g. a sub-cell
        refinement that no peak of so small a map can take, so that it decodes the argmax), or
        None. A fact of the geometry, whatever the heatmaps: results of a degenerate decoder
        measure another decoder."""
        return None

    # -- conversions ------------------------------------------------------------------------

    def to_heatmap(self, xy: Tensor) -> Tensor:
        return input_to_heatmap(xy, self.input_size, self.heatmap_size, self.align)

    def to_input(self, uv: Tensor) -> Tensor:
        return heatmap_to_input(uv, self.input_size, self.heatmap_size, self.align)

    def prepare(self, keypoints: Tensor, visible: Tensor | None) -> tuple[Tensor, Tensor]:
        """Validate keypoints and return ``(uv, weights)``: heatmap units (N, K, 2) and the
        (N, K) float mask of visible keypoints that lie on the input image."""
        visible = check_keypoints(keypoints, visible)
        xy = keypoints.float()
        on_image = in_frame(torch.nan_to_num(xy, nan=-1e9), self.input_size)
        uv = self.to_heatmap(torch.where(visible[..., None], xy, torch.zeros_like(xy)))
        return uv, (visible & on_image).float()


# --- validation -------------------------------------------------------------------------------


#: codec class name -> class: every codec :func:`register_codec` registered
CODECS: dict[str, type[Codec]] = {}


def register_codec(presets: dict[str, dict] | None = None):
    """Class decorator: register a :class:`Codec` subclass under its ``name`` in :data:`CODECS`, and
    its presets in :data:`h3r.config.PRESETS`, preset name -> its facts (literal data)::

        @register_codec(presets={"toy": {"args": {"sigma": 2.0}, "loss": "mse", "sigma": True}})
        class Toy(Codec):
            name = "toy"

    ``args`` are the class's keyword arguments, ``loss`` the loss it trains with (default "mse";
    a binary loss makes the head "binary"), ``sigma`` whether a study may set its Gaussian's sigma,
    ``target`` what its target error decodes ("encode", or "expected" where the codec draws it). The
    head is the class's :attr:`Codec.head`. The presets of h3r's own codecs are read from their
    files by :mod:`h3r.config` without importing torch, so they must be literal data."""
    def register(cls: type[Codec]) -> type[Codec]:
        if CODECS.get(cls.name, cls) is not cls:
            raise ValueError(f"codec name {cls.name!r} is taken by {CODECS[cls.name].__qualname__}")
        CODECS[cls.name] = cls
        register_presets(cls.name, cls.head, presets or {})
        return cls

    return register

def _as_size(size, what: str) -> Size:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(size)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(f"{what} must be (width, height) with positive integers, got {size!r}")
    return size


def check_keypoints(keypoints: Tensor, visible: Tensor | None) -> Tensor:
    """Check shapes and values; return the (N, K) bool visibility mask.

    Raises ValueError for a wrong shape, or for a visible keypoint whose coordinate is not finite
    (the message names the first offending sample and keypoint).
    """
    if not isinstance(keypoints, Tensor) or keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        shape = tuple(keypoints.shape) if isinstance(keypoints, Tensor) else type(keypoints).__name__
        raise ValueError(f"keypoints must be a tensor of shape (N, K, 2), got {shape}")
    if visible is None:
        visible = torch.ones(keypoints.shape[:2], dtype=torch.bool, device=keypoints.device)
    else:
        if visible.shape != keypoints.shape[:2]:
            raise ValueError(f"visible must have shape {tuple(keypoints.shape[:2])}, got {tuple(visible.shape)}")
        visible = visible > 0
    bad = visible & ~torch.isfinite(keypoints).all(-1)
    if bad.any():
        n, k = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"keypoint {k} of sample {n} is marked visible but its coordinate is "
            f"{keypoints[n, k].tolist()}; mark it invisible (visible=0) or fix the annotation")
    return visible


def map_label(heatmap_size: Size) -> str:
    """``"4×4 map"``: how :meth:`Codec.degenerate` names a heatmap size (width x height)."""
    return f"{heatmap_size[0]}×{heatmap_size[1]} map"


def check_heatmaps(heatmaps: Tensor, heatmap_size: Size) -> None:
    if not isinstance(heatmaps, Tensor) or heatmaps.ndim != 4:
        shape = tuple(heatmaps.shape) if isinstance(heatmaps, Tensor) else type(heatmaps).__name__
        raise ValueError(f"heatmaps must be a tensor of shape (N, K, H, W), got {shape}")
    if (heatmaps.shape[-1], heatmaps.shape[-2]) != tuple(heatmap_size):
        raise ValueError(
            f"heatmaps are {heatmaps.shape[-1]}x{heatmaps.shape[-2]} (WxH) but the codec was built "
            f"for {heatmap_size[0]}x{heatmap_size[1]}")


# --- batched building blocks ------------------------------------------------------------------

def cell_coordinates(heatmap_size: Size, device=None) -> tuple[Tensor, Tensor]:
    """Cell centres in heatmap units: xs (Wh,), ys (Hh,), float32."""
    wh, hh = heatmap_size
    return (torch.arange(wh, device=device, dtype=torch.float32),
            torch.arange(hh, device=device, dtype=torch.float32))


def on_grid(uv: Tensor, heatmap_size: Size, margin: float = 0.0) -> Tensor:
    """(N, K, 2) heatmap units -> (N, K) bool: ``-margin <= u <= Wh - 1 + margin`` on both axes.

    ``margin=0`` is the hull of the cell centres (all a weighted mean of cells can reach);
    ``margin=1/2`` is the heatmap's extent. NaN is never on the grid.
    """
    last = torch.tensor(heatmap_size, device=uv.device, dtype=uv.dtype) - 1
    return ((uv >= -margin) & (uv <= last + margin)).all(-1)


def outer(profile_x: Tensor, profile_y: Tensor) -> Tensor:
    """Separable heatmaps from 1-D profiles: (N, K, Wh), (N, K, Hh) -> (N, K, Hh, Wh)."""
    return profile_y[..., :, None] * profile_x[..., None, :]


def gaussian_profiles(centers: Tensor, heatmap_size: Size, sigma: float) -> tuple[Tensor, Tensor]:
    """1-D Gaussians ``exp(-(t - c)^2 / 2 sigma^2)`` along x (N, K, Wh) and y (N, K, Hh)."""
    xs, ys = cell_coordinates(heatmap_size, centers.device)
    gx = torch.exp(-((xs - centers[..., 0:1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((ys - centers[..., 1:2]) ** 2) / (2 * sigma**2))
    return gx, gy


def gaussian_heatmaps(centers: Tensor, heatmap_size: Size, sigma: float, weights: Tensor | None = None) -> Tensor:
    """Unnormalised Gaussians ``exp(-|p - c|^2 / 2 sigma^2)`` (peak 1 at a cell centre).

    centers: (N, K, 2) heatmap units -> (N, K, Hh, Wh) float32, times ``weights`` (N, K) if given.
    Separable: two 1-D profiles and an outer product, so the cost is O(N K (Hh + Wh)) before the
    product.
    """
    gx, gy = gaussian_profiles(centers, heatmap_size, sigma)
    return outer(gx if weights is None else gx * weights[..., None], gy)


def onehot_heatmaps(cells: Tensor, heatmap_size: Size, weights: Tensor | None = None) -> Tensor:
    """One-hot heatmaps from integer cells (N, K, 2) (x, y); rows with weight 0 stay all-zero.

    Cells must lie on the grid wherever weight > 0 (callers mask the rest).
    """
    wh, hh = heatmap_size
    n, k = cells.shape[:2]
    flat = torch.zeros(n, k, hh * wh, device=cells.device)
    cells = cells.long()
    index = (cells[..., 1] * wh + cells[..., 0]).clamp(0, hh * wh - 1)  # masked rows: any cell
    value = torch.ones(n, k, device=cells.device) if weights is None else (weights > 0).float()
    flat.scatter_(2, index[..., None], value[..., None])
    return flat.view(n, k, hh, wh)


def windows(heatmaps: Tensor, corners: Tensor, size: tuple[int, int]) -> Tensor:
    """Copies (N, K, h, w) of the ``size = (w, h)`` windows of heatmaps (N, K, Hh, Wh) whose
    top-left cells are ``corners`` (N, K, 2) (x, y, integer valued); every window must lie on the
    grid.

    One ``index_select`` from a strided view of the windows at every offset of the flattened maps
    (those crossing a row or a map are never selected): h runs of w contiguous cells per keypoint,
    without an (N, K, h, w) index tensor.
    """
    n, k, hh, wh = heatmaps.shape
    w, h = size
    flat = heatmaps.contiguous().view(-1)
    every = flat.as_strided((max(flat.numel() - (h - 1) * wh - w + 1, 0), h, w), (1, wh, 1))
    first = torch.arange(n * k, device=heatmaps.device).view(n, k) * (hh * wh)
    first = first + corners[..., 1].long() * wh + corners[..., 0].long()
    return every.index_select(0, first.view(-1)).view(n, k, h, w)


def argmax_2d(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Integer peak (N, K, 2) as float (x, y) and its value (N, K) for heatmaps (N, K, Hh, Wh).

    Ties go to the first cell in row-major order (as ``numpy.argmax``). The one pass over the maps
    is their row maxima (a plain reduction: ``max`` with indices over the flattened maps is several
    times slower on CPU); then the first highest row, and the first highest cell in it.
    """
    scores, y = heatmaps.amax(-1).max(-1)
    row = windows(heatmaps, torch.stack([torch.zeros_like(y), y], dim=-1), (heatmaps.shape[-1], 1))
    return torch.stack([row[..., 0, :].argmax(-1), y], dim=-1).float(), scores


def topk_2d(heatmaps: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` highest cells (N, K, k, 2) as float (x, y) and their values (N, K, k), highest
    first, of heatmaps (N, K, Hh, Wh); ``1 <= k <= Hh Wh``.

    The values are those of ``torch.topk`` over the flattened maps, and so are the cells unless
    the k-th value is tied (``torch.topk`` does not say which of the tied cells it returns either).
    The top k of a smooth peak are a blob of about sqrt(k) x sqrt(k) cells holding its argmax, so
    they lie in the s x s block centred on the argmax, ``s = 2 ceil(sqrt(k)) - 1`` (5 for k = 9).
    They are taken from there wherever the block's k-th value is at least every cell outside it,
    which the row maxima (the one pass over the maps) and the column maxima of the block's rows
    tell; elsewhere (several peaks, noise, small maps) from the whole map.
    """
    n, m, hh, wh = heatmaps.shape
    s = 2 * math.ceil(math.sqrt(k)) - 1
    if s > min(hh, wh):
        return _topk_flat(heatmaps, k)
    steps = torch.arange(s, device=heatmaps.device)
    row_max = heatmaps.detach().amax(-1)  # (N, K, Hh); only selects
    rows = (row_max.argmax(-1, keepdim=True) - s // 2).clamp(0, hh - s) + steps  # (N, K, s)
    strip = windows(heatmaps, torch.stack([torch.zeros_like(rows[..., 0]), rows[..., 0]], dim=-1), (wh, s))
    col_max = strip.detach().amax(-2)  # (N, K, Wh)
    cols = (col_max.argmax(-1, keepdim=True) - s // 2).clamp(0, wh - s) + steps
    block = strip.gather(3, cols[..., None, :].expand(n, m, s, s))  # (N, K, s, s)
    values, index = block.reshape(n, m, s * s).topk(k, dim=-1)
    cells = torch.stack([cols.gather(-1, index % s), rows.gather(-1, index // s)], dim=-1).float()
    outside = torch.maximum(row_max.scatter_(-1, rows, -math.inf).amax(-1),  # the maxima are spent
                            col_max.scatter_(-1, cols, -math.inf).amax(-1))
    missed = ~(values[..., -1] >= outside)  # NaN included
    if missed.any():
        cells[missed], values[missed] = _topk_flat(heatmaps[missed], k)
    return cells, values


def _topk_flat(heatmaps: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """:func:`topk_2d` by ``torch.topk`` over the flattened maps (..., Hh, Wh)."""
    values, index = heatmaps.flatten(-2).topk(k, dim=-1)
    wh = heatmaps.shape[-1]
    return torch.stack([index % wh, index // wh], dim=-1).float(), values


def gather_2d(heatmaps: Tensor, cells: Tensor) -> Tensor:
    """Values of heatmaps (N, K, Hh, Wh) at integer cells (N, K, ..., 2), clamped to the border.

    Returns (N, K, ...). Clamping here is only for reading neighbours of a peak on the border,
    where callers treat the missing side explicitly.
    """
    n, k, hh, wh = heatmaps.shape
    x = cells[..., 0].long().clamp(0, wh - 1)
    y = cells[..., 1].long().clamp(0, hh - 1)
    flat = (y * wh + x).reshape(n, k, math.prod(cells.shape[2:-1]))  # not -1: N or K may be 0
    return heatmaps.reshape(n, k, hh * wh).gather(2, flat).reshape(cells.shape[:-1])
