"""Benchmark protocols: how each benchmark is trained and reported, in one place.

:data:`PROTOCOLS` states, for every benchmark, its training and test splits, its normaliser, its
metric, its default input size and whether the official H3R test scripts define a protocol for
it (and on which split). The datasets take their default normaliser from it, the codec-only
target errors (:mod:`h3r.analysis`) their test splits, the official evaluation
(:mod:`h3r.evaluation`) its splits, and the benchmark chapter its tables.

The official H3R test protocol (``examples/test_*.py`` of baoshengyu/H3R through
``torchalign/api.py``) cuts faces its own way: the second half of this module holds its crop
window (:func:`official_window`), pixels and mapping (:func:`official_crop`, :class:`OfficialCrop`).
Its decoder belongs to the model (:mod:`h3r.models.official`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from h3r.data.transforms import PADDING, Crop, CropTransform
from h3r.geometry import Size, apply_affine

METRICS = ("nme", "pckh", "ap")


@dataclass(frozen=True)
class Protocol:
    """How one benchmark is trained and reported.

    dataset:        the name in :mod:`h3r.data.registry`
    train_split:    the split trained on (of ``train_dataset`` when given)
    test_splits:    the reported test sets; the first is the default
    metric:         ``"nme"`` (NME, FR@0.1, AUC@0.1), ``"pckh"`` (PCKh@0.5) or ``"ap"`` (COCO AP)
    normalizer:     the distance NMEs and PCKh are divided by (:data:`h3r.metrics.NORMALIZERS`,
                    ``"box_size"``: a size the annotation gives), or ``"oks"`` for COCO's object
                    keypoint similarity
    input_size:     the default ``(width, height)`` of the crop
    official_split: the split the official H3R test script reads; None where it has none
    train_dataset:  the dataset trained on, when it is another one (AFLW2000-3D: 300W-LP)
    """

    dataset: str
    train_split: str
    test_splits: tuple[str, ...]
    metric: str
    normalizer: str
    input_size: tuple[int, int] = (256, 256)
    official_split: str | None = None
    train_dataset: str | None = None

    @property
    def test_split(self) -> str:
        return self.test_splits[0]


PROTOCOLS: dict[str, Protocol] = {p.dataset: p for p in (
    Protocol("wflw", "train", ("test",), "nme", "inter_ocular", official_split="test"),
    # 300W: "full" is common + challenging (689 faces); the official list (data/F300W/test.txt) was not published
    Protocol("300w", "train", ("full", "common", "challenging"), "nme", "inter_ocular", official_split="full"),
    Protocol("300w_csv", "train", ("valid", "valid_common", "valid_challenge"), "nme", "inter_ocular"),
    Protocol("cofw", "train", ("test",), "nme", "inter_ocular"),
    Protocol("aflw", "train", ("test", "test_frontal"), "nme", "box_size"),
    Protocol("lapa", "train", ("test",), "nme", "inter_ocular", official_split="test"),
    Protocol("aflw2000", "train", ("test",), "nme", "box", official_split="test", train_dataset="300w_lp"),
    Protocol("mpii", "train", ("valid",), "pckh", "head"),
    Protocol("coco", "train", ("val",), "ap", "oks", input_size=(192, 256)),
    Protocol("synthetic_faces", "train", ("test", "test_hard"), "nme", "inter_ocular", input_size=(128, 128)),
    Protocol("synthetic_pose", "train", ("test", "test_hard"), "pckh", "head", input_size=(128, 128)),
)}


def face_benchmarks(real_only: bool = True) -> list[str]:
    """The benchmarks scored by NME (faces), real ones only by default."""
    return [name for name, p in PROTOCOLS.items()
            if p.metric == "nme" and not (real_only and name.startswith("synthetic"))]


def official_benchmarks() -> dict[str, str]:
    """Benchmark -> the split its official H3R test script evaluates."""
    return {name: p.official_split for name, p in PROTOCOLS.items() if p.official_split is not None}


def protocol(dataset: str) -> Protocol:
    if dataset not in PROTOCOLS:
        raise ValueError(f"no protocol for {dataset!r}; the benchmarks are {sorted(PROTOCOLS)}")
    return PROTOCOLS[dataset]


# --- the official H3R test protocol ----------------------------------------------------------------

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
