"""The crop and the augmentation, as ONE affine map from original pixels to crop pixels, and back.

Every sample is cut out of its image by a 2x3 matrix ``A`` (original -> crop, float64) built with
:func:`h3r.geometry.crop_affine` and rendered with ``cv2.warpAffine(..., INTER_LINEAR)``, whose
pixel-centre convention is the one of :mod:`h3r.geometry`. The same ``A`` moves the landmarks, so
image and landmarks agree to sub-pixel precision, and ``invert_affine(A)`` maps predictions back
to original pixels (:func:`inverse`), where the metrics are computed.

Boxes are ``(x1, y1, x2, y2)`` read as *inclusive pixel indices*, as the official H3R code reads
them (``wh = bbox[2:] - bbox[:2] + 1``): the box covers ``[x1 - 1/2, x2 + 1/2]``, its centre is
``(x1 + x2) / 2`` and its side ``x2 - x1 + 1``. The crop is the square (or, for a non-square input,
the rectangle of the input's aspect ratio) of side ``padding * max(w, h)`` centred on the box, with
``padding = 1.25`` as in the official code (``INPUT.SCALE``) and HRNet.

Augmentation (:class:`Augment`) only changes the matrix: rotation about the crop centre, scaling
of the crop side, translation by a fraction of the box side, and a horizontal mirror, after which
the keypoints are re-indexed with the layout's ``flip_index`` (a mirrored left eye is a right eye).
Colour jitter acts on the rendered crop. Keypoints that leave the crop stay where they are; the
codec masks them. As in HRNet and mmpose, the warp does not low-pass the image when it shrinks it.

The official H3R test scripts (``examples/test_*.py`` of baoshengyu/H3R through
``torchalign/api.py``) cut a test face their own way: the last part of this module holds that
crop's window (:func:`official_window`), pixels and mapping (:func:`official_crop`,
:class:`OfficialCrop`).
"""
from __future__ import annotations

from h3r._extras import require

require("data", "h3r.data (the datasets and their crops)")

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from h3r.geometry import Size, apply_affine, crop_affine, invert_affine

PADDING = 1.25


def as_size(size) -> Size:
    """int or (width, height) -> (width, height) of positive ints."""
    size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
        raise ValueError(f"input_size must be an int or (width, height) of positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def box_from_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """The tight box ("P1") of the finite keypoints: (..., K, 2) -> (..., 4) x1, y1, x2, y2."""
    return np.concatenate([np.nanmin(keypoints, axis=-2), np.nanmax(keypoints, axis=-2)], axis=-1)


def square_box(center_x, center_y, side) -> np.ndarray:
    """(N,) centres and sides -> (N, 4) inclusive boxes whose side ``x2 - x1 + 1`` is ``side``."""
    half = (np.asarray(side, dtype=np.float64) - 1) / 2
    return np.stack([center_x - half, center_y - half, center_x + half, center_y + half], axis=-1)


def xywh_box(xywh: np.ndarray) -> np.ndarray:
    """COCO/MATLAB ``[x, y, w, h]`` (N, 4) -> inclusive ``x1, y1, x2, y2`` (N, 4)."""
    xywh = np.asarray(xywh, dtype=np.float64)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:] - 1], axis=-1)


def crop_matrix(box: Sequence[float], input_size: Size, padding: float = PADDING, *, rotation: float = 0.0,
                scale: float = 1.0, shift: Sequence[float] = (0.0, 0.0), flip: bool = False) -> Tensor:
    """Original pixels -> crop pixels (2, 3) float64 for a crop of ``padding`` times ``box``.

    rotation: degrees, counter-clockwise on screen; scale: multiplies the crop side (>1 shows more
    context); shift: (dx, dy) moves the crop centre by that fraction of the box side; flip: mirror.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1 + 1, y2 - y1 + 1
    if not (w > 0 and h > 0):
        raise ValueError(f"box {list(box)} is empty: need x2 >= x1 - 1 and y2 >= y1 - 1")
    width, height = input_size
    side = max(w, h)
    crop_width = padding * scale * max(w, h * width / height)
    center = ((x1 + x2) / 2 + shift[0] * side, (y1 + y2) / 2 + shift[1] * side)
    # crop_affine renders a square; a rectangle of the input's aspect ratio is the square of the
    # crop's width, re-centred vertically (the scale is the same along both axes).
    matrix = crop_affine(center, crop_width, (width, width), rotation_deg=rotation, flip=flip)
    matrix[1, 2] += (height - width) / 2
    return matrix


def warp(image: np.ndarray, matrix: Tensor, input_size: Size) -> np.ndarray:
    """Render the crop: uint8 (H, W, 3) original -> uint8 (h, w, 3), black outside the image."""
    return cv2.warpAffine(image, matrix.numpy(), tuple(input_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def inverse(keypoints: Tensor, affine: Tensor) -> Tensor:
    """Crop pixels -> original pixels: keypoints (..., K, 2) and affines (..., 2, 3), batched.

    Exact for every sample a dataset returns, flipped ones included (their per-keypoint fields are
    re-indexed, see :class:`h3r.data.annotated.AnnotatedDataset`). Returns float64 for float64 affines.
    """
    affine = affine.to(keypoints.device)
    return apply_affine(keypoints.to(affine.dtype), invert_affine(affine))


@dataclass(frozen=True)
class Augment:
    """Random crop augmentation; each sample draws its own parameters from a numpy Generator.

    rotation: degrees, uniform in [-rotation, rotation]
    scale: the crop side is multiplied by a factor uniform in [1 - scale, 1 + scale]
    translate: the crop centre moves by up to this fraction of the box side along each axis
    flip: probability of a horizontal mirror (with keypoint re-indexing)
    brightness, contrast, saturation: colour jitter strengths, factors uniform in [1 - s, 1 + s]

    The defaults follow HRNet's facial-landmark training (rotation 30, scale 0.25, flip 0.5; HRNet
    rotates only 60% of the samples, here every sample draws an angle); the small translation and
    the colour jitter are ours.
    """

    rotation: float = 30.0
    scale: float = 0.25
    translate: float = 0.05
    flip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def sample(self, rng: np.random.Generator) -> dict:
        return {
            "rotation": float(rng.uniform(-self.rotation, self.rotation)),
            "scale": float(rng.uniform(1 - self.scale, 1 + self.scale)),
            "shift": tuple(rng.uniform(-self.translate, self.translate, size=2)),
            "flip": bool(rng.random() < self.flip),
            "color": tuple(rng.uniform(max(0.0, 1 - s), 1 + s)
                           for s in (self.brightness, self.contrast, self.saturation)),
        }


IDENTITY = {"rotation": 0.0, "scale": 1.0, "shift": (0.0, 0.0), "flip": False, "color": (1.0, 1.0, 1.0)}


def color_jitter(image: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Scale brightness, then contrast about the mean grey, then saturation about each pixel's grey
    (factors; 1 leaves the image unchanged). uint8 (H, W, 3) RGB -> uint8 (H, W, 3)."""
    if brightness == contrast == saturation == 1:
        return image
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = image.astype(np.float32) * brightness
    mean = float((x @ luma).mean())
    x = (x - mean) * contrast + mean
    grey = (x @ luma)[..., None]
    x = grey + (x - grey) * saturation
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@dataclass
class Crop:
    """One rendered crop. image: uint8 (h, w, 3); keypoints: float32 (K, 2) in crop pixels;
    affine: float64 (2, 3) original -> crop; order: (K,) int, how per-keypoint fields are re-indexed
    (the identity, or ``flip_index`` for a mirrored crop)."""

    image: np.ndarray
    keypoints: Tensor
    affine: Tensor
    order: np.ndarray


class CropTransform:
    """Box -> crop matrix (with augmentation) -> rendered crop and landmarks in crop pixels.

    Exact: ``affine`` is the map that renders the crop. The official H3R test-time crop, whose
    mapping is not the one that renders it, is :class:`OfficialCrop`.
    """

    def __init__(self, input_size, flip_index: Sequence[int], padding: float = PADDING,
                 augment: Augment | None = None):
        if not padding > 0:
            raise ValueError(f"padding must be positive, got {padding}")
        self.input_size = as_size(input_size)
        self.flip_index = np.asarray(flip_index, dtype=np.int64)
        self.padding, self.augment = padding, augment

    def matrices(self, box: np.ndarray, rng: np.random.Generator | None = None) -> tuple[Tensor, Tensor, dict]:
        """``(render, affine, params)``: the matrix that renders the crop, the one that maps the
        landmarks (the same one here), and the drawn augmentation parameters."""
        params = IDENTITY if self.augment is None else self.augment.sample(
            rng if rng is not None else np.random.default_rng())
        matrix = crop_matrix(box, self.input_size, self.padding, rotation=params["rotation"],
                             scale=params["scale"], shift=params["shift"], flip=params["flip"])
        return matrix, matrix, params

    def __call__(self, image: np.ndarray, keypoints: np.ndarray, box: np.ndarray,
                 rng: np.random.Generator | None = None) -> Crop:
        """image uint8 (H, W, 3), keypoints (K, 2) original pixels, box (4,) -> :class:`Crop`."""
        render, affine, params = self.matrices(box, rng)
        crop = color_jitter(warp(image, render, self.input_size), *params["color"])
        order = self.flip_index if params["flip"] else np.arange(len(self.flip_index))
        xy = apply_affine(torch.from_numpy(np.asarray(keypoints, dtype=np.float64)), affine)
        return Crop(crop, xy[order].float(), affine, order)


# --- the official H3R test-time crop --------------------------------------------------------------

def official_window(box: Sequence[float], padding: float = PADDING) -> list[float]:
    """torchalign's ``rect`` for an inclusive box ``x1, y1, x2, y2``: the square of side
    ``wh = padding * max(x2 - x1 + 1, y2 - y1 + 1)`` whose corner is ``(x1 + x2 + 1 - wh) / 2``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    wh = max(x2 - x1 + 1, y2 - y1 + 1) * padding
    left, top = (x1 + x2 + 1 - wh) / 2, (y1 + y2 + 1 - wh) / 2
    return [left, top, left + wh, top + wh]


def official_crop(box: Sequence[float], input_size: Size, padding: float = PADDING) -> tuple[Tensor, Tensor]:
    """The official crop: ``(render, mapping)``, each (2, 3) float64, original -> crop pixels.

    The official code lets PIL crop ``rect`` (:func:`official_window`; PIL rounds it to whole
    pixels ``[a, b)``), resizes to ``S``, and maps predictions back with ``x = u * wh / S + rect[0]``.

    ``render`` is what the crop really shows: pixels ``a .. b-1`` spread over ``S`` pixels, i.e.
    ``u = (x + 1/2 - a) * S / (b - a) - 1/2``. ``mapping`` is the official inverse, inverted:
    ``u = (x - rect[0]) * S / wh``. For the same window the two differ by
    ``1/2 * (1 - wh / S)`` original pixels (the half-pixel offset the official mapping ignores) plus
    the rounding of the window (up to 1/2 pixel), which the official mapping ignores too.
    """
    width, height = input_size
    left, top, right, bottom = official_window(box, padding)
    r0, wh = np.array([left, top]), right - left
    a = np.array([round(left), round(top)], dtype=np.float64)  # PIL: int(round(.)), half to even
    b = np.array([round(right), round(bottom)], dtype=np.float64)
    out = np.array([width, height], dtype=np.float64)
    k_render = out / (b - a)
    render = _axis_aligned(k_render, (0.5 - a) * k_render - 0.5)
    k_map = out / wh
    return render, _axis_aligned(k_map, -r0 * k_map)


def _axis_aligned(scale: np.ndarray, offset: np.ndarray) -> Tensor:
    """``u = scale * x + offset`` per axis as a (2, 3) float64 matrix."""
    m = torch.zeros(2, 3, dtype=torch.float64)
    m[0, 0], m[1, 1] = float(scale[0]), float(scale[1])
    m[:, 2] = torch.as_tensor(offset, dtype=torch.float64)
    return m


class OfficialCrop(CropTransform):
    """The official test-time crop with torchalign's pixels: ``PIL.Image.crop(rect)`` (rounded to
    whole pixels, black outside the image), then torchvision's ``resize`` (PIL bilinear, which
    low-passes when it shrinks). Landmarks and ``affine`` follow the official mapping of
    :func:`official_crop`, so that ``inverse`` gives exactly what torchalign reports. Test time
    only: no augmentation."""

    def __init__(self, input_size, flip_index: Sequence[int], padding: float = PADDING):
        super().__init__(input_size, flip_index, padding)

    def matrices(self, box: np.ndarray, rng=None) -> tuple[Tensor, Tensor, dict]:
        render, mapping = official_crop(box, self.input_size, self.padding)
        return render, mapping, {}

    def __call__(self, image: np.ndarray, keypoints: np.ndarray, box: np.ndarray, rng=None) -> Crop:
        from PIL import Image
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        _, affine, _ = self.matrices(box)
        width, height = self.input_size
        window = Image.fromarray(image).crop(official_window(box, self.padding))
        crop = np.array(TF.resize(window, [height, width], interpolation=InterpolationMode.BILINEAR))
        xy = apply_affine(torch.from_numpy(np.asarray(keypoints, dtype=np.float64)), affine)
        return Crop(crop, xy.float(), affine, np.arange(len(self.flip_index)))
