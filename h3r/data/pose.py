"""The human-pose benchmarks (MPII, COCO keypoints) read from their standard files, top-down.

Both crop a person box (``box="P2"``, the only choice) padded by 1.25 to the input's aspect ratio,
the convention of HRNet (Sun et al., CVPR 2019) and mmpose. Unannotated joints are NaN with
``visible`` 0.
"""
from __future__ import annotations

from h3r._extras import require

require("data", "h3r.data (the datasets and their crops)")

import json
import warnings
from pathlib import Path

import numpy as np
import scipy.io

from h3r.data.layouts import COCO17, MPII16, normalizer_distances
from h3r.data.annotated import AnnotatedDataset, Annotations, AnnotationError, DatasetDocs, as_array
from h3r.data.transforms import square_box



def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise AnnotationError(path, error.lineno, f"not valid JSON ({error.msg})") from None


class MPII(AnnotatedDataset):
    """MPII Human Pose (Andriluka et al., CVPR 2014): 16 joints, HRNet's JSON annotations.

    ``annot/{split}.json`` is a list of ``{image, joints (16 x 2), joints_vis (16), center, scale}``
    in MATLAB's 1-based pixels. As HRNet's ``lib/dataset/mpii.py``: 1 is subtracted from joints and
    centre, the centre moves down by ``15 * scale`` pixels, and the person box is the square of
    side ``200 * scale`` (the crop adds the 1.25 padding). The normaliser is the PCKh head size,
    ``0.6 * ||head box diagonal||``, from ``headboxes_src`` of ``annot/gt_{split}.mat`` (HRNet's and
    mmpose's copy of the official ``mpii_human_pose_v1_u12_1.mat`` head boxes, in the order of
    ``{split}.json``); without that file the normaliser is NaN (counted in ``summary()``, warned).
    The head box (4,) x1, y1, x2, y2 is returned as ``head_box``. ``visible`` is ``joints_vis``;
    where the file's ``jnt_missing`` (what PCKh counts) disagrees, ``summary()`` says how often.
    """

    name = "mpii"
    layout = MPII16
    splits = ("train", "valid", "trainval")
    boxes_supported = ("P2",)
    docs = DatasetDocs(
        title="MPII Human Pose (16 joints)",
        tree="""
mpii/
  annot/train.json  annot/valid.json     (HRNet's conversion of the official annotations)
  annot/gt_valid.mat                     (head boxes: headboxes_src, jnt_missing, pos_gt_src)
  images/000001163.jpg ...               (mpii_human_pose_v1.tar.gz)
""",
        urls=("http://human-pose.mpi-inf.mpg.de/ (images; mpii_human_pose_v1_u12_2.zip annotations)",
              "https://github.com/leoxiaobin/deep-high-resolution-net.pytorch (annot/*.json, gt_valid.mat)"),
    )

    def __init__(self, split: str, data_root=None, input_size=256, augment=None, **kwargs):
        kwargs.setdefault("box", "P2")
        super().__init__(split, data_root, input_size, augment, **kwargs)

    def load(self) -> Annotations:
        path, images = self.root / "annot" / f"{self.split}.json", self.root / "images"
        self.require(path, images)
        entries = _load_json(path)
        if not isinstance(entries, list) or not entries:
            raise AnnotationError(path, None, "expected a non-empty JSON list of person entries")
        fields = {"joints": (16, 2), "joints_vis": (16,), "center": (2,), "scale": ()}
        values = {key: [] for key in fields}
        for i, e in enumerate(entries):
            missing = [k for k in ("image", *fields) if k not in e]
            if missing:
                raise AnnotationError(path, f"entry {i}", f"missing key(s) {missing}")
            for key, shape in fields.items():
                values[key].append(as_array(e[key], shape, path, f"entry {i}", key))
        joints, vis, center, scale = (np.stack(values[key]) for key in fields)
        center[:, 1] += np.where(center[:, 0] != -1, 15 * scale, 0)
        center -= 1
        n = len(entries)
        ann = Annotations(
            images=[str(images / e["image"]) for e in entries], sources=[f"{path} (entry {i})" for i in range(n)],
            keypoints=joints - 1, visible=vis > 0,
            boxes=square_box(center[:, 0], center[:, 1], 200 * scale))
        gt = self.root / "annot" / f"gt_{self.split}.mat"
        if gt.is_file():
            head_box, missing = self._read_gt(gt, n)
            ann.normalizers = normalizer_distances(MPII16, ann.keypoints, head_box, rule="head").numpy()
            ann.meta["head_box"] = head_box.astype(np.float32)
            if missing is not None:
                ann.counts["visibility_differs_from_gt"] = int((missing == ann.visible).sum())
        else:
            if self.split == "valid":
                warnings.warn(f"{gt} not found: MPII head sizes (the PCKh normaliser) are NaN", stacklevel=3)
            ann.normalizers = np.full(n, np.nan)
            ann.counts["no_head_box"] = n
        return ann

    @staticmethod
    def _read_gt(path: Path, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``headboxes_src`` (2, 2, N) of a gt_*.mat as (N, 4) x1, y1, x2, y2 minus 1, and
        ``jnt_missing`` (16, N) as (N, 16) bool when present (PCKh counts the joints it does not
        mark missing; the JSON's ``joints_vis`` should agree, ``summary()`` counts where not)."""
        mat = scipy.io.loadmat(str(path), variable_names=("headboxes_src", "jnt_missing"))
        if "headboxes_src" not in mat:
            raise AnnotationError(path, "variable 'headboxes_src'", "missing; expected (2, 2, N) head boxes")
        boxes = as_array(mat["headboxes_src"], (2, 2, n), path, "variable 'headboxes_src'",
                         f"head boxes for the JSON's {n} entries")
        missing = mat.get("jnt_missing")
        if missing is not None:
            missing = as_array(missing, (16, n), path, "variable 'jnt_missing'", "missing-joint flags").T > 0
        return boxes.transpose(2, 0, 1).reshape(n, 4) - 1, missing


class COCOKeypoints(AnnotatedDataset):
    """COCO person keypoints (Lin et al., ECCV 2014): 17 joints, top-down crops of ground-truth boxes.

    Reads ``annotations/person_keypoints_{split}2017.json``. Crowd annotations, annotations without
    a labelled keypoint and boxes empty after clipping to the image are skipped and counted. The box
    is cleaned as HRNet does (clipped to the image, ``[x, x + w - 1]`` as inclusive pixels); the crop
    is 1.25 times the box enlarged to the input's aspect ratio, centred as HRNet's ``_box2cs``
    (its side counts the box's pixels, ``x2 - x1 + 1``, one more than HRNet's ``x2 - x1``). Keypoints are used as given,
    ``visible`` is v > 0, and each sample carries ``image_id``, ``ann_id`` and ``area`` so that
    predictions can be scored with pycocotools; ``normalizer`` is sqrt(area), the OKS scale.
    """

    name = "coco"
    layout = COCO17
    splits = ("train", "val")
    boxes_supported = ("P2",)
    docs = DatasetDocs(
        title="COCO person keypoints 2017 (17 joints)",
        tree="""
coco/
  annotations/person_keypoints_train2017.json
  annotations/person_keypoints_val2017.json
  images/train2017/000000000009.jpg ...
  images/val2017/000000000139.jpg ...
""",
        urls=("https://cocodataset.org/#download (2017 Train/Val images, 2017 Train/Val annotations)",),
    )

    def __init__(self, split: str, data_root=None, input_size=(192, 256), augment=None, **kwargs):
        kwargs.setdefault("box", "P2")
        super().__init__(split, data_root, input_size, augment, **kwargs)

    @property
    def annotation_file(self):
        """The ground truth pycocotools evaluates predictions against."""
        return self.root / "annotations" / f"person_keypoints_{self.split}2017.json"

    def load(self) -> Annotations:
        path = self.annotation_file
        images = self.root / "images" / f"{self.split}2017"
        self.require(path, images)
        data = _load_json(path)
        for key in ("images", "annotations"):
            if key not in data:
                raise AnnotationError(path, f"key {key!r}", "missing; expected COCO 'images' and 'annotations'")
        image_info = {}
        for i, im in enumerate(data["images"]):
            missing = [k for k in ("id", "file_name", "width", "height") if k not in im]
            if missing:
                raise AnnotationError(path, f"images[{i}]", f"missing key(s) {missing}")
            image_info[im["id"]] = im
        counts = {"crowd": 0, "no_keypoints": 0, "empty_box": 0}
        kept, sources, triples, bbox, area = [], [], [], [], []
        for i, a in enumerate(data["annotations"]):
            where = f"annotations[{i}] (id {a.get('id')})"
            missing = [k for k in ("id", "image_id", "keypoints", "bbox", "area") if k not in a]
            if missing:
                raise AnnotationError(path, where, f"missing key(s) {missing}")
            keypoints = as_array(a["keypoints"], (51,), path, where, "keypoints (x, y, v for 17 joints)")
            if a["image_id"] not in image_info:
                raise AnnotationError(path, where, f"image_id {a['image_id']} is not in 'images'")
            if a.get("iscrowd", 0):
                counts["crowd"] += 1
            elif not (keypoints[2::3] > 0).any():
                counts["no_keypoints"] += 1
            else:
                kept.append(a)
                sources.append(f"{path} ({where})")
                triples.append(keypoints.reshape(17, 3))
                bbox.append(as_array(a["bbox"], (4,), path, where, "bbox"))
                area.append(as_array(a["area"], (), path, where, "area"))
        if not kept:
            raise AnnotationError(path, None, f"no usable person annotation ({counts})")
        info = [image_info[a["image_id"]] for a in kept]
        size = np.array([(im["width"], im["height"]) for im in info], dtype=np.float64)
        x, y, w, h = np.stack(bbox).T
        # HRNet's box cleaning: clip to the image, inclusive pixel indices.
        x1, y1 = np.maximum(0, x), np.maximum(0, y)
        x2 = np.minimum(size[:, 0] - 1, x1 + np.maximum(0, w - 1))
        y2 = np.minimum(size[:, 1] - 1, y1 + np.maximum(0, h - 1))
        area = np.stack(area)
        ok = (area > 0) & (x2 >= x1) & (y2 >= y1)
        counts["empty_box"] = int((~ok).sum())
        triples = np.stack(triples)
        ann = Annotations(
            images=[str(images / im["file_name"]) for im in info], sources=sources,
            keypoints=triples[..., :2], visible=triples[..., 2] > 0, boxes=np.stack([x1, y1, x2, y2], axis=-1),
            normalizers=np.sqrt(area), counts=counts,
            meta={"image_id": np.array([a["image_id"] for a in kept], dtype=np.int64),
                  "ann_id": np.array([a["id"] for a in kept], dtype=np.int64), "area": area})
        return ann.take(ok)
