"""Keypoint layouts: how many points a dataset annotates, how they mirror, how NME is normalised.

A layout is part of a dataset's definition: the flip test and flip augmentation read
``flip_index``; :func:`normalizer_distances` measures the distance its ``normalizer`` names, which
the datasets store per sample and the metrics divide errors by. Indices are 0-based.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

#: the normalisers :func:`normalizer_distances` measures from a layout's keypoints or given boxes
LAYOUT_NORMALIZERS = ("inter_ocular", "inter_pupil", "box", "head")
#: MPII's head size is this fraction of the head box diagonal (``SC_BIAS`` of the MPII toolkit)
MPII_HEAD_SCALE = 0.6


@dataclass(frozen=True)
class Layout:
    """A keypoint layout.

    name: short identifier, e.g. ``"ibug68"``.
    flip_index: ``flip_index[k]`` is the keypoint that ``k`` becomes under a horizontal flip.
    normalizer: how the dataset's protocol normalises errors:
        ``"inter_ocular"`` distance between ``normalizer_index`` (outer eye corners),
        ``"inter_pupil"`` distance between the centroids of the eye groups in ``normalizer_index``,
        ``"box"`` sqrt(w * h) of the face box, ``"head"`` (MPII head box), ``"oks"`` (COCO area).
    normalizer_index: the keypoints the normaliser reads, when it reads keypoints.
    pupil_index: two groups of keypoints whose centroids are the pupils, for the inter-pupil
        variant of the normaliser that some papers report (``None`` where a layout has no eyes).
    """

    name: str
    flip_index: tuple[int, ...]
    normalizer: str
    normalizer_index: tuple[int, ...] | None = None
    names: tuple[str, ...] | None = None
    pupil_index: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    @property
    def num_keypoints(self) -> int:
        return len(self.flip_index)

    def __post_init__(self):
        if sorted(self.flip_index) != list(range(len(self.flip_index))):
            raise ValueError(f"layout {self.name}: flip_index is not a permutation")
        if any(self.flip_index[j] != i for i, j in enumerate(self.flip_index)):
            raise ValueError(f"layout {self.name}: flip_index is not an involution")


def flip_index_from_pairs(num_keypoints: int, pairs) -> tuple[int, ...]:
    index = list(range(num_keypoints))
    for a, b in pairs:
        index[a], index[b] = b, a
    return tuple(index)


def _mirror(first: int, last: int) -> list[tuple[int, int]]:
    """Pairs (first, last), (first+1, last-1), ... of a contour drawn left to right."""
    return [(first + i, last - i) for i in range((last - first + 1) // 2)]


# iBUG / 300W 68-point layout: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
IBUG68 = Layout(
    name="ibug68",
    flip_index=flip_index_from_pairs(68, [
        *_mirror(0, 16), *_mirror(17, 26), *_mirror(31, 35),
        (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
        *_mirror(48, 54), *_mirror(55, 59), *_mirror(60, 64), *_mirror(65, 67),
    ]),
    normalizer="inter_ocular",
    normalizer_index=(36, 45),
    # the eye centroids, as in the commented-out line of the official examples/test_300w.py
    pupil_index=(tuple(range(36, 42)), tuple(range(42, 48))),
)

# WFLW 98-point layout; the flip order is the one of the official H3R code (torchalign/cfg.py).
WFLW98 = Layout(
    name="wflw98",
    flip_index=(
        32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15,
        14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 46, 45, 44,
        43, 42, 50, 49, 48, 47, 37, 36, 35, 34, 33, 41, 40, 39, 38, 51, 52, 53,
        54, 59, 58, 57, 56, 55, 72, 71, 70, 69, 68, 75, 74, 73, 64, 63, 62, 61,
        60, 67, 66, 65, 82, 81, 80, 79, 78, 77, 76, 87, 86, 85, 84, 83, 92, 91,
        90, 89, 88, 95, 94, 93, 97, 96,
    ),
    normalizer="inter_ocular",
    normalizer_index=(60, 72),
    pupil_index=((96,), (97,)),
)

MPII16_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
MPII16 = Layout(
    name="mpii16",
    flip_index=flip_index_from_pairs(16, [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)]),
    normalizer="head",
    names=MPII16_NAMES,
)

# COFW 29-point layout (Burgos-Artizzu et al., ICCV 2013). Flip pairs are HRNet's
# (lib/utils/transforms.py MATCHED_PARTS["COFW"], 1-based there), identical to mmpose's cofw.py.
# Points 8/9 are the outer eye corners and 16/17 the pupils (checked on real annotations: 16 lies
# between 8 and the inner corner 10). HRNet's compute_nme normalises COFW by |p8 - p9| and calls it
# "interocular"; the inter-pupil variant of the original RCPR protocol reads 16/17.
COFW29 = Layout(
    name="cofw29",
    flip_index=flip_index_from_pairs(29, [
        (0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19),
        (22, 23),
    ]),
    normalizer="inter_ocular",
    normalizer_index=(8, 9),
    pupil_index=((16,), (17,)),
)

# AFLW 19-point layout of Zhu et al. (CVPR 2016) as HRNet distributes it: brows 0-5, eyes 6-11,
# nose 12-14, mouth 15-17, chin 18. Flip pairs from HRNet's MATCHED_PARTS["AFLW"] (= mmpose aflw.py).
# The protocol normalises by the face box size (HRNet's ``box_size`` column).
AFLW19 = Layout(
    name="aflw19",
    flip_index=flip_index_from_pairs(19, [
        (0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17),
    ]),
    normalizer="box",
)

# LaPa 106-point layout (Liu et al., AAAI 2020). The flip order is FLIP_ORDER of the official H3R
# model configs (models/lapa/*/config.yaml), which agrees entry by entry with mmpose's lapa.py.
# Normaliser as the official examples/test_lapa.py: outer eye corners 66 and 79 ("interocular");
# its commented-out variant, the pupils 104 and 105, is ``pupil_index``.
LAPA106 = Layout(
    name="lapa106",
    flip_index=(
        32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15,
        14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 46, 45, 44,
        43, 42, 50, 49, 48, 47, 37, 36, 35, 34, 33, 41, 40, 39, 38, 51, 52, 53,
        54, 65, 64, 63, 62, 61, 60, 59, 58, 57, 56, 55, 79, 78, 77, 76, 75, 82,
        81, 80, 83, 70, 69, 68, 67, 66, 73, 72, 71, 74, 90, 89, 88, 87, 86, 85,
        84, 95, 94, 93, 92, 91, 100, 99, 98, 97, 96, 103, 102, 101, 105, 104,
    ),
    normalizer="inter_ocular",
    normalizer_index=(66, 79),
    pupil_index=((104,), (105,)),
)

COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# COCO person keypoints; errors are scored by OKS (pycocotools), whose scale is sqrt(area).
COCO17 = Layout(
    name="coco17",
    flip_index=flip_index_from_pairs(17, [(2 * i - 1, 2 * i) for i in range(1, 9)]),
    normalizer="oks",
    names=COCO17_NAMES,
)

LAYOUTS = {layout.name: layout for layout in (IBUG68, WFLW98, COFW29, AFLW19, LAPA106, MPII16, COCO17)}


# --- normalisers ------------------------------------------------------------------------------

def _float64(x) -> Tensor:
    """Tensors and arrays upcast, Python numbers read as float64 (not torch's default float32)."""
    return x.double() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))


def normalizer_distances(layout: Layout, gt, boxes=None, rule: str | None = None) -> Tensor:
    """The distance a protocol divides errors by, per sample: (N,) float64 pixels from ground truth
    (N, K, 2), unchecked: NaN or 0 where the annotation allows no normaliser (datasets count such
    samples; :func:`h3r.metrics.normalizer_from_layout` raises for them).

    ``rule`` (default ``layout.normalizer``) picks it:

    ``"inter_ocular"``  ``|gt[a] - gt[b]|`` for ``(a, b) = layout.normalizer_index``: the outer eye
                        corners, 300W (36, 45), WFLW (60, 72), LaPa (66, 79), COFW (8, 9) as HRNet.
    ``"inter_pupil"``   distance between the centroids of the two eye groups
                        ``layout.pupil_index`` (or, for a layout without it, the two halves of
                        ``normalizer_index``): 300W's eye contours, WFLW's pupils 96/97.
    ``"box"``           ``sqrt(w * h)`` of the face boxes (N, 4) ``(x1, y1, x2, y2)`` (the AFLW
                        protocol; AFLW2000-3D uses :func:`h3r.metrics.landmark_box`).
    ``"head"``          MPII: ``0.6 * |(x2 - x1, y2 - y1)|`` of the head boxes (N, 4).

    Raises ValueError for an unknown rule, eye indices out of range, or missing boxes.
    """
    gt = _float64(gt)
    if gt.ndim != 3 or gt.shape[-1] != 2:
        raise ValueError(f"gt must have shape (N, K, 2), got {tuple(gt.shape)}")
    rule = rule or layout.normalizer
    where = f"layout {layout.name!r} with the {rule!r} normaliser"
    if rule in ("inter_ocular", "inter_pupil"):
        groups = _eye_groups(layout, rule, where)
        if max(max(g) for g in groups) >= gt.shape[1]:
            raise ValueError(f"{where}: eye indices {groups} are out of range for {gt.shape[1]} keypoints")
        left, right = (gt[:, list(g)].mean(dim=1) for g in groups)
        return torch.linalg.vector_norm(left - right, dim=-1)
    if rule in ("box", "head"):
        if boxes is None:
            which = "face boxes (or landmark_box(gt))" if rule == "box" else "head boxes"
            raise ValueError(f"{where}: pass the {which} as boxes (N, 4) = x1, y1, x2, y2")
        boxes = _float64(boxes)
        if tuple(boxes.shape) != (gt.shape[0], 4):
            raise ValueError(f"{where}: boxes must have shape ({gt.shape[0]}, 4) as x1, y1, x2, y2, "
                             f"got {tuple(boxes.shape)}")
        wh = boxes[:, 2:] - boxes[:, :2]
        if rule == "box":
            return (wh[:, 0] * wh[:, 1]).sqrt()
        return MPII_HEAD_SCALE * torch.linalg.vector_norm(wh, dim=-1)
    if rule == "oks":
        raise ValueError(f"{where}: COCO-style layouts are scored by OKS, not NME; use coco_keypoint_ap")
    raise ValueError(f"{where}: unknown normaliser {rule!r}; known ones are {LAYOUT_NORMALIZERS}")


def _eye_groups(layout: Layout, rule: str, where: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The two keypoint groups whose centroids the eye-distance normalisers measure between."""
    index = layout.normalizer_index
    if rule == "inter_ocular":
        if index is None or len(index) != 2:
            raise ValueError(f"{where}: needs two keypoint indices in normalizer_index, got {index}")
        return (index[0],), (index[1],)
    if layout.pupil_index is not None:
        return tuple(layout.pupil_index[0]), tuple(layout.pupil_index[1])
    if layout.normalizer == "inter_pupil" and index and len(index) % 2 == 0:
        return tuple(index[: len(index) // 2]), tuple(index[len(index) // 2:])
    raise ValueError(f"{where}: the layout defines no pupil_index (two groups of eye keypoints)")


# --- in words, for the book ---------------------------------------------------------------------

def describe_normalizer(rule: str, layout: Layout) -> str:
    """What the normaliser ``rule`` of a dataset with ``layout`` divides by, in words; ``"box_size"``
    is the size an annotation states (AFLW's ``box_size`` column)."""
    if rule == "inter_ocular":
        i, j = layout.normalizer_index
        return f"inter-ocular: points {i} and {j} (outer eye corners)"
    return {
        "box": "√(w·h) of the tight box of the ground-truth landmarks",
        "box_size": "the annotation's face box size (box_size column)",
        "head": "PCKh: 0.6 × the head box diagonal",
        "oks": "OKS (COCO keypoint AP, pycocotools)",
    }[rule]


def describe_pupils(layout: Layout) -> str:
    """The keypoints whose centroids the ``"inter_pupil"`` normaliser measures between, in words
    (a range for a group, ``""`` for a layout without eyes)."""
    if layout.pupil_index is None:
        return ""
    a, b = (g[0] if len(g) == 1 else f"{g[0]}–{g[-1]}" for g in layout.pupil_index)
    return f"centroids of {a} and {b}"
