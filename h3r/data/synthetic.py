"""The embedded procedural benchmark: exact sub-pixel ground truth, generated on the fly.

No public landmark dataset can be downloaded everywhere, and quantisation error is only
measurable when the annotation is exact. :class:`~h3r.data.synthetic_faces.SyntheticFaces`
(68 iBUG points) and :class:`~h3r.data.synthetic_pose.SyntheticPose` (16 MPII joints) draw a
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
    streams. ``"train"`` and ``"test"`` share one difficulty (:data:`NORMAL`); ``"test_hard"``
    (:data:`HARD`) has heavy occlusion, blur, rotation and yaw, like WFLW's challenging subsets.
    Every sample carries ``subsets`` flags (thresholds on what was drawn, the same for every
    split) so that metrics can be reported per subset.
"""
from __future__ import annotations

import functools
import hashlib
import math
import operator
from dataclasses import dataclass, field
from pathlib import Path as PathLib

import cv2
import numpy as np
import torch
from matplotlib.backend_bases import GraphicsContextBase
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.path import Path
from matplotlib.transforms import Affine2D, IdentityTransform

from h3r.data.base import normalize_image
from h3r.data.layouts import Layout
from h3r.provenance import atomic_path

SPLITS = {"train": 0, "test": 1, "test_hard": 2}
OCCLUDER = 255  #: label of occluding objects in :meth:`Canvas.covering`
Color = tuple[float, float, float]  # RGB in 0..255 (floats allowed)


# --- how hard a split is ------------------------------------------------------------------------

@dataclass(frozen=True)
class Nuisance:
    """Probabilities and ranges of everything that makes a sample hard.

    Angles in degrees; ``blur_max`` is a Gaussian sigma in pixels of a 128-pixel image (it scales
    with the input size); ``noise_max`` is the std of sensor noise in grey levels; ``light_max``
    the strength of the illumination gradient (1: black on one side).
    """

    p_large_pose: float = 0.15   # faces: yaw of 25-50 deg, roll up to 60; bodies: roll of 45-180 deg
    p_expression: float = 0.2    # faces: open mouth, smile, raised brows, closed eyes
    p_occluder: float = 0.25
    max_occluders: int = 2
    p_blur: float = 0.15
    blur_max: float = 2.5
    p_light: float = 0.2
    light_max: float = 0.8
    noise_max: float = 6.0


NORMAL = Nuisance()
HARD = Nuisance(p_large_pose=0.6, p_expression=0.5, p_occluder=0.85, max_occluders=3,
                p_blur=0.5, blur_max=3.0, p_light=0.5, light_max=0.9, noise_max=12.0)
DIFFICULTY = {"train": NORMAL, "test": NORMAL, "test_hard": HARD}

# subset flags: thresholds on what was drawn
LARGE_POSE_DEG = 30.0
BLUR_SIGMA = 1.2        # in pixels of a 128-pixel image
STRONG_LIGHT = 0.5
OCCLUDED_FRACTION = 0.1


def draw_occluders(rng: np.random.Generator, nuisance: Nuisance) -> int:
    """How many occluders a sample gets."""
    return int(rng.integers(1, nuisance.max_occluders + 1)) if rng.random() < nuisance.p_occluder else 0


def draw_camera(rng: np.random.Generator, nuisance: Nuisance) -> tuple[float, float, float]:
    """``(blur, light, noise)`` for :func:`camera`; blur in pixels of a 128-pixel image: a slight
    optical blur, or a strong one with probability ``p_blur``."""
    strong_blur, strong_light = rng.random(2) < (nuisance.p_blur, nuisance.p_light)
    blur = rng.uniform(BLUR_SIGMA, nuisance.blur_max) if strong_blur else rng.uniform(0.0, 0.6)
    light = rng.uniform(STRONG_LIGHT, nuisance.light_max) if strong_light else rng.uniform(0.0, 0.35)
    return float(blur), float(light), float(rng.uniform(0, nuisance.noise_max))


# --- geometry helpers (numpy, model or pixel units) ---------------------------------------------

def unit(angle_deg) -> np.ndarray:
    """Direction(s) ``(..., 2)`` at ``angle_deg`` clockwise from straight up (y points down)."""
    a = np.radians(angle_deg)
    return np.stack([np.sin(a), -np.cos(a)], -1)


def spline(points, samples: int = 8, closed: bool = False) -> np.ndarray:
    """Catmull-Rom curve through ``points`` (n, 2); it passes through every point exactly.

    Open: ``(n - 1) * samples + 1`` points from the first to the last; closed: ``n * samples``.
    """
    return _spline_weights(len(points), samples, closed) @ np.asarray(points, dtype=np.float64)


@functools.lru_cache
def _spline_weights(n: int, samples: int, closed: bool) -> np.ndarray:
    """The curve is linear in its control points: weights (curve points, n)."""
    p = np.eye(n)
    if closed:
        p = np.concatenate([p[-1:], p, p[:2]])
    else:  # mirror the end points so the curve ends on them
        p = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    t = np.arange(samples)[:, None] / samples
    basis = 0.5 * np.concatenate([-t + 2 * t**2 - t**3, 2 - 5 * t**2 + 3 * t**3,
                                  t + 4 * t**2 - 3 * t**3, -(t**2) + t**3], 1)  # (samples, 4)
    windows = p[np.arange(len(p) - 3)[:, None] + np.arange(4)]  # (segments, 4, n)
    weights = (basis @ windows).reshape(-1, n)
    return weights if closed else np.concatenate([weights, p[-2:-1]])


def ellipse(center, axes, angle_deg: float = 0.0, n: int = 48) -> np.ndarray:
    """Polygon (n, 2) of an ellipse with semi-axes ``(a, b)``, ``a`` along ``angle_deg`` from x."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])  # transposed
    return (_circle(n) * axes) @ rot + center


@functools.lru_cache
def _circle(n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], 1)


def rectangle(center, half_sizes, angle_deg: float = 0.0) -> np.ndarray:
    """Corners (4, 2) of a rectangle with half-sizes ``(a, b)``, side ``a`` along ``angle_deg`` from x."""
    a = math.radians(angle_deg)
    local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.asarray(half_sizes, dtype=np.float64)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return local @ rot.T + np.asarray(center, dtype=np.float64)


def ribbon(points, half_widths) -> np.ndarray:
    """Polygon around a polyline (n, 2) with a half-width per point (tapered strokes)."""
    p = np.asarray(points, dtype=np.float64)
    tangent = np.gradient(p, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    offset = normal * np.broadcast_to(np.asarray(half_widths, dtype=np.float64), len(p))[:, None]
    return np.concatenate([p + offset, (p - offset)[::-1]])


def capsule(a, b, radius_a: float, radius_b: float, n: int = 10) -> np.ndarray:
    """Tapered limb from ``a`` to ``b`` with round ends; its axis passes through both centres."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = (b - a) / max(float(np.hypot(*(b - a))), 1e-12)
    half = _half_circle(n) @ np.array([d, [-d[1], d[0]]])  # a half circle facing along a -> b
    return np.concatenate([b + radius_b * half, a - radius_a * half])


@functools.lru_cache
def _half_circle(n: int) -> np.ndarray:
    t = np.linspace(-np.pi / 2, np.pi / 2, n)
    return np.stack([np.cos(t), np.sin(t)], 1)


def transform(points, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine map to points (..., 2)."""
    return np.asarray(points) @ matrix[:, :2].T + matrix[:, 2]


def place(points: np.ndarray, size, roll_deg: float, extent: float, rng: np.random.Generator,
          margin: float = 2.0) -> np.ndarray:
    """A random similarity (2x3) that puts model ``points`` (n, 2) inside an image of ``size``.

    The points are turned by ``roll_deg`` (counter-clockwise on screen), scaled so that the long
    side of their box spans ``extent`` of the image's short side (less if they would not fit), and
    shifted uniformly over the positions that keep them ``margin`` pixels inside the frame.
    """
    w, h = size
    a = math.radians(roll_deg)
    rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    q = points @ rot.T
    lo, span = q.min(0), np.maximum(np.ptp(q, 0), 1e-9)
    room = np.array([w - 1 - 2 * margin, h - 1 - 2 * margin], dtype=np.float64)
    scale = min(extent * min(w, h) / span.max(), (room / span).min())
    shift = margin + (room - span * scale) * rng.random(2) - lo * scale
    return np.concatenate([scale * rot, shift[:, None]], 1)


# --- the canvas -----------------------------------------------------------------------------------

class Canvas:
    """A list of shapes in painting order, rasterised in one pass with exact area anti-aliasing.

    Coordinates are input pixels (pixel centres at integers). :meth:`fill` adds polygons of one
    colour (a list of polygons is their union: they are oriented alike for the non-zero rule;
    only a pixel where two of their edges cross is approximate, as Agg adds coverages there),
    :meth:`stroke` adds polylines of constant width with round joins and caps. Shapes filled with a
    ``label`` are remembered so that :meth:`covering` tells which one lies on top of a point.
    """

    def __init__(self, size):
        self.size = tuple(size)
        self._paths: list[Path] = []
        self._faces: list[tuple] = []   # RGBA in 0..1, alpha 0 for strokes
        self._edges: list[tuple] = []   # RGBA in 0..1, alpha 0 for fills
        self._widths: list[float] = []
        self._labelled: list[tuple[list[np.ndarray], int]] = []

    def fill(self, polygons, color: Color, label: int = 0) -> None:
        """Fill a polygon (n, 2), or the union of a list of them, with ``color`` (RGB 0..255)."""
        if isinstance(polygons, np.ndarray):
            polygons = [np.asarray(polygons, dtype=np.float64)]
        else:
            polygons = [_oriented(np.asarray(p, dtype=np.float64)) for p in polygons]
        self._add(_compound(polygons), face=color)
        if label:
            self._labelled.append((polygons, label))

    def stroke(self, polylines, width: float, color: Color) -> None:
        """Draw a polyline (n, 2), or a list of them, ``width`` pixels wide."""
        polylines = [polylines] if isinstance(polylines, np.ndarray) else list(polylines)
        self._add(_compound([np.asarray(p, dtype=np.float64) for p in polylines]), edge=color, width=width)

    def _add(self, path: Path, face: Color | None = None, edge: Color | None = None, width: float = 0.0):
        path.should_simplify = False  # never drop vertices
        self._paths.append(path)
        self._faces.append(_rgba(face))
        self._edges.append(_rgba(edge))
        self._widths.append(width)

    def covering(self, points) -> np.ndarray:
        """Label (K,) of the last-filled labelled shape that contains each point, 0 if none."""
        points = np.asarray(points, dtype=np.float64)
        if not self._labelled:
            return np.zeros(len(points), dtype=np.int64)
        polygons = [p for shape, _ in self._labelled for p in shape]
        owner = np.repeat(np.arange(len(self._labelled)), [len(shape) for shape, _ in self._labelled])
        inside = _winding(points, polygons) != 0  # (K, polygons)
        top = np.max(np.where(inside, owner + 1, 0), axis=1)  # 1 + index of the last shape, 0: none
        labels = np.array([0] + [label for _, label in self._labelled])
        return labels[top]

    def render(self, background: np.ndarray) -> np.ndarray:
        """Paint every shape over ``background`` (uint8 (H, W, 3)); returns uint8 (H, W, 3)."""
        w, h = self.size
        renderer = RendererAgg(w, h, 72)
        pixels = np.asarray(renderer.buffer_rgba())  # (H, W, 4), a view into Agg's buffer
        cv2.cvtColor(background, cv2.COLOR_RGB2RGBA, dst=pixels)  # opaque
        gc = GraphicsContextBase()
        gc.set_snap(False)  # never move vertices to pixel centres
        gc.set_antialiased(True)
        gc.set_capstyle("round")
        gc.set_joinstyle("round")
        # Agg's device pixel (i, j) covers [i, i + 1] with y up; ours is centred on (i, j), y down.
        to_device = Affine2D().scale(1, -1).translate(0.5, h - 0.5)
        if self._paths:  # RendererBase.draw_path_collection; widths in points at 72 dpi = pixels
            renderer.draw_path_collection(
                gc, to_device, self._paths, np.zeros((0, 3, 3)), np.zeros((0, 2)), IdentityTransform(),
                np.array(self._faces), np.array(self._edges), np.array(self._widths),
                [(0, None)], [True], None, "screen")  # solid lines, anti-aliased, no urls
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)


def _rgba(color: Color | None) -> tuple:
    if color is None:
        return (0.0, 0.0, 0.0, 0.0)
    return (*(min(max(float(c) / 255.0, 0.0), 1.0) for c in color), 1.0)


def _oriented(polygon: np.ndarray) -> np.ndarray:
    """The polygon, reversed if need be so that all turn the same way (then the non-zero rule
    fills a union without holes where they overlap)."""
    x, y = polygon[:, 0], polygon[:, 1]
    twice_area = x[:-1] @ y[1:] - x[1:] @ y[:-1] + x[-1] * y[0] - x[0] * y[-1]
    return polygon if twice_area >= 0 else polygon[::-1]


def _compound(polylines: list[np.ndarray]) -> Path:
    """One path of several polylines (Agg closes each one when it fills the path)."""
    if len(polylines) == 1:
        return Path(polylines[0])
    lengths = [len(p) for p in polylines]
    codes = np.full(sum(lengths), Path.LINETO, dtype=Path.code_type)
    codes[np.cumsum(lengths) - lengths] = Path.MOVETO
    return Path(np.concatenate(polylines), codes)


def _winding(points: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray:
    """Winding numbers (K, P) of closed polygons around points (K, 2)."""
    a = np.concatenate(polygons)[None]
    b = np.concatenate([np.concatenate([p[1:], p[:1]]) for p in polygons])[None]
    px, py = points[:, None, 0], points[:, None, 1]
    cross = (b[..., 0] - a[..., 0]) * (py - a[..., 1]) - (px - a[..., 0]) * (b[..., 1] - a[..., 1])
    up = (a[..., 1] <= py) & (b[..., 1] > py) & (cross > 0)
    down = (a[..., 1] > py) & (b[..., 1] <= py) & (cross < 0)
    starts = np.cumsum([len(p) for p in polygons]) - [len(p) for p in polygons]
    return np.add.reduceat(up.astype(np.int64) - down, starts, axis=1)


# --- backgrounds, clutter, occluders, camera ------------------------------------------------------

def random_color(rng: np.random.Generator, lo: float = 0, hi: float = 255) -> np.ndarray:
    return rng.uniform(lo, hi, 3)


def smooth_noise(rng: np.random.Generator, size, cells: int, channels: int = 1) -> np.ndarray:
    """Band-limited noise (H, W, channels) float32 with unit-ish amplitude: a coarse random grid
    of ``cells`` along the long side, upsampled bicubically."""
    w, h = size
    cw, ch = max(2, round(cells * w / max(w, h))), max(2, round(cells * h / max(w, h)))
    grid = rng.standard_normal((ch, cw, channels), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)


def background(rng: np.random.Generator, size) -> np.ndarray:
    """A textured backdrop, uint8 (H, W, 3): a colour gradient with blotches and fine grain."""
    cells = (int(rng.integers(3, 10)),) * 2
    c0, c1 = random_color(rng, 20, 235), random_color(rng, 20, 235)
    t = _ramp(cells, rng.uniform(0, 360))[..., None] * 0.5 + 0.5
    coarse = c0 + (c1 - c0) * t + rng.normal(0, 35, (*cells, 3))
    image = cv2.resize(coarse.astype(np.float32), size, interpolation=cv2.INTER_CUBIC)
    image += 8 * smooth_noise(rng, size, max(4, size[0] // 4))
    return np.clip(image, 0, 255).astype(np.uint8)


def clutter(canvas: Canvas, rng: np.random.Generator, count: int, scale: float) -> None:
    """Random blobs, bars and scribbles; ``scale`` is the typical size in pixels."""
    w, h = canvas.size
    for _ in range(count):
        kind = rng.integers(3)
        center = rng.uniform([0, 0], [w, h])
        size = scale * rng.uniform(0.2, 1.0)
        if kind == 0:
            canvas.fill(ellipse(center, size * rng.uniform(0.3, 1.0, 2), rng.uniform(0, 180)),
                        random_color(rng))
        elif kind == 1:
            canvas.fill(rectangle(center, size * rng.uniform(0.2, 1.0, 2), rng.uniform(0, 180)),
                        random_color(rng))
        else:
            path = center + np.cumsum(rng.normal(0, size * 0.5, (4, 2)), 0)
            canvas.stroke(spline(path), size * rng.uniform(0.05, 0.25), random_color(rng))


def hand(center, size: float, angle_deg: float) -> list[np.ndarray]:
    """A hand-like blob: a palm and five fingers, ``size`` pixels across the palm."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    parts = [ellipse((0, 0), (0.5, 0.6))]
    for x, length in zip((-0.36, -0.12, 0.12, 0.36), (0.55, 0.7, 0.65, 0.5)):
        parts.append(capsule((x, -0.4), (x * 1.3, -0.4 - length), 0.11, 0.09))
    parts.append(capsule((0.4, 0.15), (0.85, -0.25), 0.13, 0.1))
    return [size * p @ rot.T + center for p in parts]


def occluders(canvas: Canvas, rng: np.random.Generator, count: int, anchors: np.ndarray,
              scale: float, skin: Color) -> None:
    """Paint ``count`` occluding objects (hands, boxes, blobs) near random ``anchors`` (K, 2) in
    pixels, each ``0.25 - 0.5 x scale`` pixels across, labelled :data:`OCCLUDER`."""
    for _ in range(count):
        center = anchors[rng.integers(len(anchors))] + rng.normal(0, 0.15 * scale, 2)
        size = scale * rng.uniform(0.25, 0.5)
        kind = rng.integers(3)
        if kind == 0:
            tone = np.asarray(skin) * rng.uniform(0.75, 1.15) + rng.normal(0, 10, 3)
            canvas.fill(hand(center, size, rng.uniform(0, 360)), tone, OCCLUDER)
        elif kind == 1:
            canvas.fill(rectangle(center, size * rng.uniform(0.4, 1.0, 2), rng.uniform(0, 180)),
                        random_color(rng), OCCLUDER)
        else:
            canvas.fill(ellipse(center, size * rng.uniform(0.4, 1.0, 2), rng.uniform(0, 180)),
                        random_color(rng), OCCLUDER)


def camera(image: np.ndarray, rng: np.random.Generator, light: float, blur: float,
           noise: float) -> np.ndarray:
    """Illumination, optics and sensor: uint8 (H, W, 3) -> uint8 (H, W, 3).

    ``light``: strength of a linear illumination gradient in a random direction (with a random
    gain, colour cast and low-frequency shading); ``blur``: Gaussian sigma in pixels (0: none);
    ``noise``: std of additive noise in grey levels (uniform, four times cheaper to draw than
    Gaussian). Blur is symmetric, so it moves no edge and no keypoint.
    """
    h, w = image.shape[:2]
    cells = (8, 8)
    shading = (1 + light * _ramp(cells, rng.uniform(0, 360))) * (1 + rng.normal(0, 0.06, cells))
    gain = rng.uniform(0.75, 1.15) * (1 + rng.normal(0, 0.04, 3))  # brightness and colour cast
    field = cv2.resize((shading[..., None] * gain).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    out = image.astype(np.float32)
    out *= field
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    out += (rng.random(out.shape, dtype=np.float32) - np.float32(0.5)) * np.float32(noise * math.sqrt(12))
    out += np.float32(0.5)  # the cast below truncates: this rounds
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def _ramp(size, angle_deg: float) -> np.ndarray:
    """(H, W) float32 in [-1, 1]: position along a direction across the image."""
    w, h = size
    d = unit(angle_deg)
    xs = (np.arange(w, dtype=np.float32) - (w - 1) / 2) * d[0]
    ys = (np.arange(h, dtype=np.float32) - (h - 1) / 2) * d[1]
    reach = abs(d[0]) * (w - 1) / 2 + abs(d[1]) * (h - 1) / 2
    return (ys[:, None] + xs[None, :]) / max(reach, 1e-6)


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
        split: ``"train"``, ``"test"`` or ``"test_hard"``.
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

    def set_epoch(self, epoch: int) -> None:
        """Training draws fresh samples every epoch (stream ``epoch * length + index``), so the
        synthetic training set never repeats; the test splits are fixed and ignore the epoch."""
        self.epoch = epoch if self.split == "train" else 0

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLITS[self.split], self.epoch * self.length + index])

    # -- an optional render cache ---------------------------------------------------------------
    # Many runs of the study train on the same samples (same seed, size, length, epoch); rendering
    # them once and reading them back makes data loading free. The cache holds exactly what
    # `render` returns, keyed by everything that determines it, the rendering code included.

    cache_dir: PathLib | None = None
    _block: tuple | None = None

    def enable_cache(self, cache_dir) -> "SyntheticDataset":
        self.cache_dir = PathLib(cache_dir)
        return self

    def cache_file(self) -> PathLib:
        key = repr((type(self).__name__, self.split, self.seed, self.epoch, self.length, self.input_size,
                    self.nuisance, _source_digest()))
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        return self.cache_dir / f"{self.name}-{self.split}-{self.input_size[0]}x{self.input_size[1]}-{digest}.npz"

    def ensure_cached(self, workers: int = 0, progress: bool = False) -> PathLib:
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

    def scene(self, index: int) -> Scene:
        """Render sample ``index`` (uint8 image, exact float64 keypoints, drawn parameters)."""
        return self.render(self.rng(self._check_index(index)))

    def render(self, rng: np.random.Generator) -> Scene:
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
    here = PathLib(__file__).parent
    text = b"".join((here / f).read_bytes() for f in ("synthetic.py", "synthetic_faces.py", "synthetic_pose.py"))
    return hashlib.sha1(text).hexdigest()[:12]


def _as_size(size) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(size)
    if len(size) != 2 or not all(isinstance(v, int) and v >= 16 for v in size):
        raise ValueError(f"input_size must be an int or (width, height) of ints >= 16, got {size!r}")
    return size


def __getattr__(name: str):
    # `from h3r.data.synthetic import SyntheticFaces` without an import cycle.
    if name == "SyntheticFaces":
        from h3r.data.synthetic_faces import SyntheticFaces
        return SyntheticFaces
    if name == "SyntheticPose":
        from h3r.data.synthetic_pose import SyntheticPose
        return SyntheticPose
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
