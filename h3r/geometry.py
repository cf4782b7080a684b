"""Where a point is: the one coordinate convention of h3r, and the affine maps built on it.

Input pixels
    A point ``(x, y)`` is measured in input pixels with the *centre* of the top-left pixel at
    ``(0, 0)``: pixel ``(c, r)`` covers ``[c - 1/2, c + 1/2) x [r - 1/2, r + 1/2)`` and an image
    of width ``W`` spans ``[-1/2, W - 1/2]``. This is OpenCV's convention (``cv2.warpAffine``
    maps pixel centres to pixel centres) and that of annotation files once MATLAB's 1 is
    subtracted. Sizes are always ``(width, height)``; tensors are ``(..., H, W)``.

Heatmap units
    A heatmap of size ``(Wh, Hh)`` over an input of size ``(W, H)`` has stride ``s = W / Wh``
    along x (and ``H / Hh`` along y). Heatmap cell ``i`` is a point ``u`` in heatmap units. Under
    the default alignment ``"center"`` cell ``i`` pools input pixels ``s*i ... s*i + s - 1``, so

    .. math::  x = s\\,(u + \\tfrac12) - \\tfrac12, \\qquad u = \\frac{x + \\tfrac12}{s} - \\tfrac12 .

    It commutes with horizontal flips: flipping the input (``x -> W - 1 - x``) is flipping the
    heatmap (``u -> Wh - 1 - u``), so flip-test averaging needs no correction.

Two other alignments exist only because a method defines its own:

``"corner"``  ``x = s * u``: index times stride, no half-pixel offset. The official H3R decoder
              and mmpose's MSRA/DARK codecs use it. Flipping the heatmap then moves a point by
              ``s - 1`` input pixels.
``"udp"``     ``x = u * (W - 1) / (Wh - 1)``: the unbiased data processing of Huang et al.
              (CVPR 2020), which aligns the first and the last pixel centres of both grids.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

ALIGNMENTS = ("center", "corner", "udp")

Size = tuple[int, int]


def _scale_offset(input_size: Size, heatmap_size: Size, align: str) -> tuple[Tensor, Tensor]:
    """Per-axis ``(a, b)`` with ``x = a * u + b`` for the given alignment. Shapes (2,), (2,)."""
    w, h = input_size
    wh, hh = heatmap_size
    if align == "center":
        a = torch.tensor([w / wh, h / hh], dtype=torch.float64)
        b = (a - 1) / 2
    elif align == "corner":
        a = torch.tensor([w / wh, h / hh], dtype=torch.float64)
        b = torch.zeros(2, dtype=torch.float64)
    elif align == "udp":
        if wh < 2 or hh < 2:
            raise ValueError(f"align='udp' needs a heatmap of at least 2x2 cells, got {heatmap_size}")
        a = torch.tensor([(w - 1) / (wh - 1), (h - 1) / (hh - 1)], dtype=torch.float64)
        b = torch.zeros(2, dtype=torch.float64)
    else:
        raise ValueError(f"unknown alignment {align!r}; choose one of {ALIGNMENTS}")
    return a, b


def input_to_heatmap(xy: Tensor, input_size: Size, heatmap_size: Size, align: str = "center") -> Tensor:
    """Input pixels ``(..., 2)`` to heatmap units ``(..., 2)`` (float32 at least)."""
    a, b = _scale_offset(input_size, heatmap_size, align)
    xy = xy.float() if xy.dtype not in (torch.float32, torch.float64) else xy
    return (xy - b.to(xy)) / a.to(xy)


def heatmap_to_input(uv: Tensor, input_size: Size, heatmap_size: Size, align: str = "center") -> Tensor:
    """Heatmap units ``(..., 2)`` to input pixels ``(..., 2)`` (float32 at least)."""
    a, b = _scale_offset(input_size, heatmap_size, align)
    uv = uv.float() if uv.dtype not in (torch.float32, torch.float64) else uv
    return uv * a.to(uv) + b.to(uv)


def flip_keypoints(xy: Tensor, width: float, flip_index: Sequence[int] | Tensor | None = None) -> Tensor:
    """Mirror keypoints ``(..., K, 2)`` about the vertical axis of an image ``width`` pixels wide.

    ``flip_index[k]`` is the keypoint that keypoint ``k`` becomes (left eye <-> right eye); the
    result is re-ordered so that index ``k`` again names the same semantic point.
    """
    out = xy.clone()
    out[..., 0] = (width - 1) - xy[..., 0]
    if flip_index is not None:
        out = out[..., torch.as_tensor(flip_index, device=xy.device, dtype=torch.long), :]
    return out


def in_frame(xy: Tensor, size: Size) -> Tensor:
    """``(..., 2) -> (...)`` bool: the point lies on the image ``[-1/2, W - 1/2] x [-1/2, H - 1/2]``."""
    w, h = size
    x, y = xy[..., 0], xy[..., 1]
    return (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)


# --- affine maps (2x3 matrices acting on input-pixel coordinates) --------------------------------

def apply_affine(xy: Tensor, matrix: Tensor) -> Tensor:
    """Map points ``(..., K, 2)`` by affine matrices ``(..., 2, 3)`` (broadcast over the batch)."""
    return xy @ matrix[..., :2].transpose(-1, -2) + matrix[..., None, :, 2]


def invert_affine(matrix: Tensor) -> Tensor:
    """Inverse of affine matrices ``(..., 2, 3)``."""
    linear_inv = torch.linalg.inv(matrix[..., :2].double())
    shift = -(linear_inv @ matrix[..., :, 2:].double())
    return torch.cat([linear_inv, shift], dim=-1).to(matrix.dtype)


def crop_affine(
    center: Sequence[float],
    box_size: float,
    output_size: Size,
    rotation_deg: float = 0.0,
    flip: bool = False,
) -> Tensor:
    """The 2x3 map from image pixels to a square crop rendered at ``output_size``.

    The crop is the square of side ``box_size`` image pixels centred on ``center``, rotated by
    ``rotation_deg`` (counter-clockwise as seen on screen) and optionally mirrored; its edges land
    exactly on the output's edges ``-1/2`` and ``W - 1/2``, so the map is exact to sub-pixel level
    under the convention above. Returns float64 of shape (2, 3).
    """
    if not (box_size > 0 and math.isfinite(box_size)):
        raise ValueError(f"crop box size must be a positive finite number, got {box_size}")
    w, h = output_size
    k = torch.tensor([w / box_size, h / box_size], dtype=torch.float64)
    theta = math.radians(rotation_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    # y points down, so a counter-clockwise turn on screen is [[cos, sin], [-sin, cos]].
    rot = torch.tensor([[cos, sin], [-sin, cos]], dtype=torch.float64)
    linear = k[:, None] * rot
    if flip:
        linear[0] = -linear[0]
    c = torch.as_tensor(center, dtype=torch.float64)
    target_center = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64)
    shift = target_center - linear @ c
    return torch.cat([linear, shift[:, None]], dim=1)
