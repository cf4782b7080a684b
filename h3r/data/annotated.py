"""Where the real datasets live, how they fail, and the base class they all share.

One setting says where data is: the ``data_root`` argument, else ``$H3R_DATA_ROOT``, else
``./data``. Dataset ``name`` lives under ``<data_root>/<name>/`` in the folder tree its class
documents (``docs``, also appended to the class docstring). Nothing is downloaded at run time.

Failures are loud and say what to do:

* a dataset that is not there raises :class:`DatasetNotFoundError` listing every file looked for,
  where, and how to obtain the dataset;
* a malformed annotation raises :class:`AnnotationError` with ``file:line`` (or the JSON entry /
  MATLAB variable) and what was expected;
* a missing image raises (``on_missing_image="raise"``, the default) naming the image and the
  annotation that lists it, or with ``"skip"`` the sample is dropped when the index is built and
  counted in :meth:`AnnotatedDataset.summary`. Nothing is dropped without being counted.
"""
from __future__ import annotations

from h3r._extras import require

require("data", "h3r.data (the datasets and their crops)")

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from h3r.data.sample import normalize_image
from h3r.data.layouts import Layout
from h3r.data.transforms import PADDING, Augment, CropTransform, OfficialCrop, box_from_keypoints

DATA_ROOT_ENV = "H3R_DATA_ROOT"
DEFAULT_DATA_ROOT = "./data"
#: how a test face is cut out: h3r's exact crop, or the official H3R test scripts' (OfficialCrop)
CROP_PROTOCOLS = ("ours", "official")
IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG")


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """``data_root`` if given, else ``$H3R_DATA_ROOT``, else ``./data``."""
    if data_root is None:
        data_root = os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    return Path(data_root).expanduser()


@dataclass(frozen=True)
class DatasetDocs:
    """How a dataset is laid out on disk and where it is officially obtained."""

    title: str
    tree: str
    urls: tuple[str, ...]
    notes: str = ""

    def render(self, folder: str = "<name>") -> str:
        tree = "\n".join("    " + line for line in self.tree.strip("\n").splitlines())
        urls = "\n".join(f"    {u}" for u in self.urls)
        text = f"Expected under ``<data_root>/{folder}/``::\n\n{tree}\n\nObtain it from:\n\n{urls}\n"
        return text + (f"\n{self.notes.strip()}\n" if self.notes else "")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's annotation files are not where the data root says they should be."""

    def __init__(self, dataset: str, missing: Sequence[Path], root: Path, docs: DatasetDocs | None = None):
        looked = "\n".join(f"  {p}" for p in missing[:10])
        looked += f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        msg = (f"dataset {dataset!r} not found. Looked for:\n{looked}\n"
               f"under the data root {root} (set it with data_root=..., or ${DATA_ROOT_ENV}; default "
               f"{DEFAULT_DATA_ROOT}). Nothing is downloaded at run time.")
        if docs is not None:
            msg += f"\n\n{docs.title}. " + docs.render(dataset)
        super().__init__(msg)
        self.dataset, self.missing = dataset, list(missing)


class AnnotationError(ValueError):
    """A malformed annotation: ``where`` is a line number, a JSON entry or a MATLAB variable."""

    def __init__(self, path: str | os.PathLike, where: int | str | None, message: str):
        if where is None:
            location = str(path)
        else:
            location = f"{path}:{where}" if isinstance(where, int) else f"{path} ({where})"
        super().__init__(f"{location}: {message}")
        self.path, self.where = str(path), where


def parse_floats(tokens: Sequence[str], path, line: int, what: str) -> np.ndarray:
    """Tokens -> float64 array, or an :class:`AnnotationError` naming the bad field."""
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise AnnotationError(path, line, f"{what}: {bad!r} is not a number") from None


def as_array(value, shape: tuple[int, ...], path, where: str, what: str) -> np.ndarray:
    """A JSON/MATLAB field -> float64 array of ``shape``, or an :class:`AnnotationError`."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationError(path, where, f"{what} must be numbers, got {str(value)[:60]}") from None
    if array.shape != shape:
        raise AnnotationError(path, where, f"expected {what} of shape {shape}, got {array.shape}")
    return array


def _is_float(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def find_image(stem: Path) -> Path:
    """``stem`` plus the first image extension that exists, else ``stem.jpg`` (reported missing)."""
    for ext in IMAGE_EXTENSIONS:
        if Path(f"{stem}{ext}").is_file():
            return Path(f"{stem}{ext}")
    return Path(f"{stem}.jpg")


def read_image(path: str | os.PathLike, source: str = "") -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3).

    EXIF orientation is ignored: annotations are made on the stored pixel array (MATLAB's and PIL's
    ``imread`` ignore it too), and rotating the pixels would move every landmark.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        why = "not found" if not Path(path).is_file() else "could not be decoded (corrupt or not an image)"
        raise (FileNotFoundError if not Path(path).is_file() else OSError)(
            f"image {path} {why}; it is listed by {source or 'the annotations'}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass
class Annotations:
    """A split's annotations as stacked arrays (N samples, K keypoints), in original pixels.

    images:       per sample, the image path (or, for datasets that ship images inside the
                  annotation file, a key that the dataset's ``read_image`` understands)
    sources:      per sample, where its annotation comes from (``file:line``), for error messages
    keypoints:    (N, K, 2) float64, NaN where a point is not annotated
    visible:      (N, K) bool, annotated (occluded-but-annotated points count as visible)
    boxes:        (N, 4) float64 x1, y1, x2, y2 (inclusive pixel indices) the dataset's own box
                  ("P2"), or None
    normalizers:  (N,) float64 the protocol's normalising distance, or None to compute from the
                  layout
    subsets:      name -> (N,) bool test-subset flags
    per_keypoint: name -> (N, K) float arrays re-indexed with the keypoints under flips (occluded)
    meta:         name -> (N, ...) numeric arrays returned as tensors (image_id, area, ...)
    counts:       what the loader dropped or flagged, for ``summary()``
    """

    images: list
    sources: list[str]
    keypoints: np.ndarray
    visible: np.ndarray | None = None
    boxes: np.ndarray | None = None
    normalizers: np.ndarray | None = None
    subsets: dict[str, np.ndarray] = field(default_factory=dict)
    per_keypoint: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: np.ndarray) -> Annotations:
        """The samples at ``index`` (int array or bool mask); ``counts`` is kept as is."""
        index = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=np.int64)

        def pick(value):
            if isinstance(value, dict):
                return {k: v[index] for k, v in value.items()}
            if isinstance(value, list):
                return [value[i] for i in index]
            return None if value is None else value[index]

        return replace(self, **{f.name: pick(getattr(self, f.name)) for f in fields(self) if f.name != "counts"})


class AnnotatedDataset(Dataset):
    """Base of every real dataset: an index of :class:`Annotations` plus the crop transform.

    ``dataset[i]`` is the sample dict of :mod:`h3r.data.sample` plus ``box`` (4,) (the box the crop
    was built on, original pixels), ``image_path``, ``subsets`` (where the protocol has test
    subsets) and the dataset's per-keypoint and meta fields.

    Arguments shared by all datasets:
        split: one of the class's ``splits``.
        data_root: see :func:`resolve_data_root`.
        input_size: crop size, int or (width, height).
        augment: an :class:`h3r.data.transforms.Augment` for training, or None.
        box: ``"P1"`` (tight box of the ground-truth landmarks) or ``"P2"`` (the dataset's own box);
            faces only, pose datasets always crop on their person box.
        padding: the crop is ``padding`` times the box (1.25 as the official H3R code and HRNet).
        protocol: ``"ours"`` (the exact crop, :class:`CropTransform`) or ``"official"`` (the official
            H3R test-time crop and mapping, :class:`h3r.data.transforms.OfficialCrop`; no augmentation).
        on_missing_image: ``"raise"`` or ``"skip"`` (drop at index time, counted in ``summary()``).
        seed: per-sample augmentation seed; samples draw from ``default_rng([seed, epoch, index])``
            (``set_epoch`` changes the draw each epoch); None draws fresh entropy.

    Under a flip augmentation every per-keypoint field (keypoints, visible, keypoints_orig,
    occluded) is re-indexed with the layout's ``flip_index``, so that
    ``invert_affine(affine)`` maps ``keypoints`` onto ``keypoints_orig`` in every case.
    """

    name: str = ""
    folder: str | None = None  # the folder under the data root, when it is not ``name``
    layout: Layout
    splits: tuple[str, ...] = ()
    docs: DatasetDocs | None = None
    boxes_supported: tuple[str, ...] = ("P1", "P2")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "docs" in cls.__dict__ and cls.docs is not None:
            docs = cls.docs.render(cls.folder or cls.name).replace("\n", "\n    ").rstrip()
            cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    " + docs + "\n"

    def __init__(self, split: str, data_root=None, input_size=256, augment: Augment | None = None,
                 box: str = "P1", padding: float = PADDING, protocol: str = "ours",
                 on_missing_image: str = "raise", seed: int | None = None):
        if split not in self.splits:
            raise ValueError(f"{self.name}: unknown split {split!r}; choose one of {self.splits}")
        if box not in self.boxes_supported:
            raise ValueError(f"{self.name}: box must be one of {self.boxes_supported}, got {box!r}")
        if on_missing_image not in ("raise", "skip"):
            raise ValueError(f"on_missing_image must be 'raise' or 'skip', got {on_missing_image!r}")
        self.split, self.box, self.seed, self.epoch = split, box, seed, 0
        self.on_missing_image = on_missing_image
        self.data_root = resolve_data_root(data_root)
        self.root = self.data_root / (self.folder or self.name)
        if protocol not in CROP_PROTOCOLS:
            raise ValueError(f"protocol must be one of {CROP_PROTOCOLS}, got {protocol!r}")
        if protocol == "official" and augment is not None:
            raise ValueError("the official protocol is the official test-time crop; it takes no augmentation")
        self.protocol = protocol
        self.transform = (OfficialCrop(input_size, self.layout.flip_index, padding) if protocol == "official"
                          else CropTransform(input_size, self.layout.flip_index, padding, augment))
        self.input_size = self.transform.input_size
        self.ann = self._finalize(self.load())

    # -- what a dataset implements ----------------------------------------------------------

    def load(self) -> Annotations:
        """Parse the split's annotation files (raise DatasetNotFoundError / AnnotationError)."""
        raise NotImplementedError

    def read_image(self, index: int) -> np.ndarray:
        """uint8 RGB (H, W, 3) of sample ``index``."""
        return read_image(self.ann.images[index], self.ann.sources[index])

    def compute_normalizers(self, ann: Annotations) -> np.ndarray:
        raise AnnotationError(self.root, None, f"{self.name}: the loader gave no normalisers")

    # -- shared machinery -------------------------------------------------------------------

    def require(self, *paths: Path) -> None:
        """Raise one DatasetNotFoundError listing every path of ``paths`` that does not exist."""
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise DatasetNotFoundError(self.folder or self.name, missing, self.data_root, self.docs)

    def _finalize(self, ann: Annotations) -> Annotations:
        n, k = ann.keypoints.shape[:2]
        if k != self.layout.num_keypoints:
            raise AnnotationError(self.root, None, f"{self.name}: loader gave {k} keypoints per sample, "
                                  f"layout {self.layout.name} has {self.layout.num_keypoints}")
        finite = np.isfinite(ann.keypoints).all(-1)
        visible = finite if ann.visible is None else (ann.visible.astype(bool) & finite)
        ann.keypoints = np.where(visible[..., None], ann.keypoints, np.nan)
        ann.visible = visible
        self.counts = {"indexed": n, **ann.counts,
                       "missing_points": int((~visible).sum()),
                       "samples_with_missing_points": int((~visible).any(-1).sum())}
        if self.box == "P2" and ann.boxes is None:
            raise ValueError(f"{self.name}: this dataset has no box of its own; use box='P1'")
        if self.box == "P1" and not visible.any(-1).all():
            i = int(np.flatnonzero(~visible.any(-1))[0])
            raise AnnotationError(ann.sources[i], None, "no annotated landmark, so no P1 box")
        if ann.normalizers is None:
            ann.normalizers = self.compute_normalizers(ann)
        self.counts["invalid_normalizers"] = int((~(ann.normalizers > 0)).sum())
        ann = self._drop_missing_images(ann)
        self.boxes = (box_from_keypoints(ann.keypoints) if self.box == "P1" else ann.boxes).astype(np.float64)
        return ann

    def _drop_missing_images(self, ann: Annotations) -> Annotations:
        paths = [p for p in ann.images if isinstance(p, (str, Path))]
        exists = {p: os.path.isfile(p) for p in set(paths)}
        missing = np.array([not exists.get(p, True) for p in ann.images], dtype=bool)
        if missing.any() and self.on_missing_image == "raise":
            i = int(np.flatnonzero(missing)[0])
            raise FileNotFoundError(
                f"image {ann.images[i]} not found; it is listed by {ann.sources[i]} "
                f"({int(missing.sum())} of {len(ann)} images of {self.name}/{self.split} are missing). "
                f"Pass on_missing_image='skip' to drop (and count) such samples.")
        self.counts["skipped_missing_image"] = int(missing.sum())
        return ann.take(~missing) if missing.any() else ann

    def __len__(self) -> int:
        return len(self.ann)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}/{self.split} has {len(self)} samples, asked for {index}")
        a = self.ann
        crop = self.transform(self.read_image(index), a.keypoints[index], self.boxes[index], self.rng(index))
        order = crop.order
        sample = {
            "image": normalize_image(crop.image),
            "keypoints": crop.keypoints,
            "visible": torch.from_numpy(a.visible[index][order]).float(),
            "keypoints_orig": torch.from_numpy(a.keypoints[index][order]).float(),
            "affine": crop.affine,
            "normalizer": torch.tensor(a.normalizers[index], dtype=torch.float32),
            "index": index,
            "box": torch.from_numpy(self.boxes[index]).float(),
            "image_path": str(a.images[index]),
        }
        if a.subsets:
            sample["subsets"] = {k: torch.tensor(bool(v[index])) for k, v in a.subsets.items()}
        for key, value in a.per_keypoint.items():
            sample[key] = torch.from_numpy(np.asarray(value[index][order], dtype=np.float32))
        for key, value in a.meta.items():
            sample[key] = torch.as_tensor(value[index])
        return sample

    def summary(self) -> dict:
        """Counts: samples served, what was skipped or flagged, and the subsets' sizes."""
        out = {"dataset": self.name, "split": self.split, "samples": len(self), **self.counts}
        out.update({f"subset_{k}": int(v.sum()) for k, v in self.ann.subsets.items()})
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, root={str(self.root)!r}, samples={len(self)}, "
                f"input_size={self.input_size}, box={self.box!r})")
