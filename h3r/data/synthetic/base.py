"""The embedded procedural benchmark: exact sub-pixel ground truth, generated on the fly.

No public landmark dataset can be downloaded everywhere, and quantisation error is only
measurable when the annotation is exact. :class:`~h3r.data.synthetic.faces.SyntheticFaces`
(68 iBUG points) and :class:`~h3r.data.synthetic.pose.SyntheticPose` (16 MPII joints) draw a
random face or figure as polygons whose vertices *are* the keypoints (or whose axes pass through
them), so the keypoints are the exact continuous positions of the drawn geometry.

Rendering
    Polygons are given in input pixels (:mod:`h3r.geometry`: pixel centres at integers) and
    painted by Agg, matplotlib's rasteriser, with exact area anti-aliasing at the output size: a
    pixel takes the area-weighted mix of the colours that cover its square
    ``[c - 1/2, c + 1/2) x [r - 1/2, r + 1/2)``. That is the limit of supersampling followed by
    area-downsampling, and it is exact in both axes (a rendered disc's intensity centroid is its
    centre to ~0.01 px, see ``tests/test_synthetic.py``). ``cv2.fillPoly`` with ``shift`` is not:
    it rounds every vertex's y to a whole row and adds the polygon's outline, which moves edges
    by 0.1-0.5 px depending on their orientation, even at 4x supersampling.

Randomness
    Sample ``i`` of a split draws everything from ``np.random.default_rng([seed, split_id, i])``,
    so it is the same in every process and DataLoader worker, and the splits draw from disjoint
    streams. ``"train"``, ``"val"`` and ``"test"`` share one difficulty (:data:`NORMAL`); ``"test_hard"``
    (:data:`HARD`) has heavy occlusion, blur, rotation and yaw, like WFLW's challenging subsets.
    Every sample carries ``subsets`` flags (thresholds on what was drawn, the same for every
    split) so that metrics can be reported per subset.
"""
from __future__ import annotations

import functools
import hashlib
import operator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from h3r.data.layouts import Layout
from h3r.data.sample import normalize_image, normalize_images
from h3r.data.synthetic.canvas import Canvas
from h3r.data.synthetic.scene import (DIFFICULTY, Nuisance, background, camera, clutter, draw_camera,
                                      draw_occluders, occluders)
from h3r.provenance import atomic_path

SPLITS = {"train": 0, "test": 1, "test_hard": 2, "val": 3}


# --- the datasets ---------------------------------------------------------------------------------

@dataclass
class Scene:
    """One rendered sample before normalisation (exact geometry, uint8 image)."""

    image: np.ndarray        # uint8 (H, W, 3) RGB
    keypoints: np.ndarray    # float64 (K, 2) in input pixels
    occluded: np.ndarray     # bool (K,): covered by an occluder (or, for bodies, another part)
    normalizer: float        # the layout's normalising distance in pixels
    subsets: dict[str, bool]
    params: dict[str, float] = field(default_factory=dict)  # what was drawn: pose, blur, ...
    head_box: np.ndarray | None = None  # float64 (4,) x1, y1, x2, y2 (bodies)


class SyntheticDataset(torch.utils.data.Dataset):
    """Base class: splits, deterministic random streams, and the sample dict.

    Args:
        split: ``"train"``, ``"test"``, ``"test_hard"`` or ``"val"`` (a validation split drawn from
            the training distribution, for a search that must not see the test split).
        length: number of samples (any; they are generated on the fly).
        input_size: ``(width, height)`` or an int for a square image.
        seed: selects the benchmark instance; ``(seed, split, index)`` fixes a sample.
        nuisance: override the split's difficulty (:data:`DIFFICULTY`).
    """

    name = "synthetic"
    layout: Layout
    subset_names: tuple[str, ...] = ()

    def __init__(self, split: str = "train", length: int = 10_000, input_size=128, seed: int = 0,
                 nuisance: Nuisance | None = None):
        if split not in SPLITS:
            raise ValueError(f"{type(self).__name__}: unknown split {split!r}; choose one of {tuple(SPLITS)}")
        if not (isinstance(length, int) and length >= 0):
            raise ValueError(f"{type(self).__name__}: length must be a non-negative int, got {length!r}")
        if not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"{type(self).__name__}: seed must be a non-negative int, got {seed!r}")
        self.split, self.length, self.seed = split, length, seed
        self.input_size = _as_size(input_size)
        self.nuisance = DIFFICULTY[split] if nuisance is None else nuisance

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, length={self.length}, "
                f"input_size={self.input_size}, seed={self.seed})")

    epoch = 0
    #: training draws new samples every epoch; False: epoch 0's samples in every epoch, a finite
    #: training set as a real dataset is (:attr:`h3r.config.Config.fresh_samples`)
    fresh = True

    def set_epoch(self, epoch: int) -> None:
        """Training draws fresh samples every epoch (stream ``epoch * length + index``), so the
        synthetic training set never repeats, unless :attr:`fresh` is off; the test splits are
        fixed and ignore the epoch."""
        self.epoch = epoch if self.split == "train" and self.fresh else 0

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLITS[self.split], self.epoch * self.length + index])

    # -- an optional render cache ---------------------------------------------------------------
    # Many runs of the study train on the same samples (same seed, size, length, epoch); rendering
    # them once and reading them back makes data loading free. The cache holds exactly what
    # `render` returns, keyed by everything that determines it, the rendering code included.

    cache_dir: Path | None = None
    _block: tuple | None = None

    def enable_cache(self, cache_dir) -> "SyntheticDataset":
        self.cache_dir = Path(cache_dir)
        return self

    def cache_file(self) -> Path:
        key = repr((type(self).__name__, self.split, self.seed, self.epoch, self.length, self.input_size,
                    self.nuisance, _source_digest()))
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        return self.cache_dir / f"{self.name}-{self.split}-{self.input_size[0]}x{self.input_size[1]}-{digest}.npz"

    def ensure_cached(self, workers: int = 0, progress: bool = False) -> Path:
        """Render the current epoch's samples into the cache unless they are there already."""
        path = self.cache_file()
        if path.exists():
            return path
        from tqdm import tqdm

        scenes = [None] * self.length
        loader = torch.utils.data.DataLoader(_Renderer(self), batch_size=None, num_workers=workers)
        for index, scene in tqdm(loader, total=self.length, desc=f"render {self.name} {self.split}",
                                 disable=not progress, leave=False):
            scenes[index] = scene
        head = [sc.head_box for sc in scenes] if scenes and scenes[0].head_box is not None else []
        arrays = dict(image=np.stack([sc.image for sc in scenes]), keypoints=np.stack([sc.keypoints for sc in scenes]),
                      occluded=np.stack([sc.occluded for sc in scenes]),
                      normalizer=np.array([sc.normalizer for sc in scenes]),
                      subsets=np.array([[sc.subsets[k] for k in self.subset_names] for sc in scenes], dtype=bool),
                      head_box=np.array(head, dtype=np.float64))
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
            np.savez(f, **arrays)
        return path

    def _cached_scene(self, index: int) -> "Scene":
        path = self.cache_file()
        if self._block is None or self._block[0] != path:
            if not path.exists():
                self.ensure_cached()
            with np.load(path) as data:
                self._block = (path, {k: data[k] for k in data.files})
        d = self._block[1]
        return Scene(image=d["image"][index], keypoints=d["keypoints"][index], occluded=d["occluded"][index],
                     normalizer=float(d["normalizer"][index]),
                     subsets={k: bool(v) for k, v in zip(self.subset_names, d["subsets"][index])},
                     head_box=d["head_box"][index] if len(d["head_box"]) else None)

    def cached_batch(self, indices: torch.Tensor) -> dict:
        """Samples ``indices`` (B,) of the current epoch, read from the render cache and collated in
        one piece: ``image`` (B, 3, H, W) (channels_last), ``keypoints`` (B, K, 2), ``visible``
        (B, K), ``index`` (B,); equal to what a DataLoader collates of ``self[i]`` for these
        fields, which are all training reads, without the per-sample work."""
        self._cached_scene(0)  # loads the epoch's block
        block, index = self._block[1], indices.numpy()
        keypoints = torch.from_numpy(block["keypoints"][index]).float()
        return {"image": normalize_images(torch.from_numpy(block["image"][index])), "keypoints": keypoints,
                "visible": torch.ones(keypoints.shape[:2]), "index": indices}

    def scene(self, index: int) -> Scene:
        """Render sample ``index`` (uint8 image, exact float64 keypoints, drawn parameters)."""
        return self.render(self.rng(self._check_index(index)))

    # -- the one render pipeline ----------------------------------------------------------------
    # A subclass says what its subject is: where it stands (`place_subject`), how it is painted
    # (`paint_subject`), which skin tone its occluding hands take (`occluder_skin`) and what a
    # sample records (`describe`). Everything around the subject is the same for every subject.

    clutter_range: tuple[int, int] = (2, 9)  #: background objects, drawn in [low, high)

    def render(self, rng: np.random.Generator) -> Scene:
        """Draw one sample from ``rng``: place the subject, paint the backdrop, clutter, the subject
        and its occluders, then apply the camera (illumination, blur, noise)."""
        w, h = self.input_size
        subject = self.place_subject(rng)
        backdrop = background(rng, self.input_size)
        canvas = Canvas(self.input_size)
        clutter(canvas, rng, int(rng.integers(*self.clutter_range)), 0.3 * min(w, h))
        keypoints, drawn = self.paint_subject(canvas, rng, subject)
        n_occluders = draw_occluders(rng, self.nuisance)
        occluders(canvas, rng, n_occluders, keypoints, subject.size_px, self.occluder_skin(rng, subject))
        on_top = canvas.covering(keypoints)
        blur, light, noise = draw_camera(rng, self.nuisance)
        image = camera(canvas.render(backdrop), rng, light, blur * min(w, h) / 128, noise)
        look = {"blur": blur, "light": light, "noise": noise, "occluders": float(n_occluders)}
        return self.describe(subject, drawn, image, keypoints, on_top, look)

    def place_subject(self, rng: np.random.Generator):
        """The subject's random shape and placement; has ``size_px``, its size in pixels."""
        raise NotImplementedError

    def paint_subject(self, canvas: Canvas, rng: np.random.Generator, subject) -> tuple[np.ndarray, dict]:
        """Paint the subject; return its keypoints (K, 2) in pixels and what :meth:`describe` needs."""
        raise NotImplementedError

    def occluder_skin(self, rng: np.random.Generator, subject) -> np.ndarray:
        """The skin tone (RGB) of occluding hands."""
        raise NotImplementedError

    def describe(self, subject, drawn: dict, image: np.ndarray, keypoints: np.ndarray, on_top: np.ndarray,
                 look: dict) -> Scene:
        """The :class:`Scene`: ``on_top`` (K,) labels what lies on each keypoint
        (:meth:`Canvas.covering`), ``look`` holds the camera's and occluders' draws."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        scene = self._cached_scene(index) if self.cache_dir else self.render(self.rng(index))
        keypoints = torch.from_numpy(scene.keypoints).float()
        sample = {
            "image": normalize_image(scene.image),
            "keypoints": keypoints,
            "visible": torch.ones(len(keypoints)),
            "keypoints_orig": keypoints.clone(),
            "affine": torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64),
            "normalizer": torch.tensor(scene.normalizer, dtype=torch.float32),
            "index": index,
            "occluded": torch.from_numpy(scene.occluded).float(),
            "subsets": {k: torch.tensor(v) for k, v in scene.subsets.items()},
        }
        if scene.head_box is not None:
            sample["head_box"] = torch.from_numpy(scene.head_box).float()
        return sample

    def _check_index(self, index) -> int:
        index = operator.index(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for length {self.length}")
        return index


class _Renderer(torch.utils.data.Dataset):
    """(index, scene) pairs of a synthetic dataset, for rendering it with DataLoader workers."""

    def __init__(self, dataset: SyntheticDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return index, self.dataset.render(self.dataset.rng(index))


@functools.cache
def _source_digest() -> str:
    """A hash of the rendering code: a change to it invalidates every cached sample."""
    text = b"".join(f.read_bytes() for f in sorted(Path(__file__).parent.glob("*.py")))
    return hashlib.sha1(text).hexdigest()[:12]


def _as_size(size) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(size)
    if len(size) != 2 or not all(isinstance(v, int) and v >= 16 for v in size):
        raise ValueError(f"input_size must be an int or (width, height) of ints >= 16, got {size!r}")
    return size
