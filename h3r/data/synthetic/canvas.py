"""Shapes in pixels and the canvas that paints them with exact area anti-aliasing.

Coordinates are input pixels (pixel centres at integers, :mod:`h3r.geometry`); every helper is
numpy and returns polygons ``(n, 2)`` that :class:`Canvas` fills or strokes. The rasteriser is
Agg, matplotlib's, which weights each pixel by the exact area of its square
``[c - 1/2, c + 1/2) x [r - 1/2, r + 1/2)`` that a shape covers (see :mod:`h3r.data.synthetic`).
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np
from matplotlib.backend_bases import GraphicsContextBase
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.path import Path
from matplotlib.transforms import Affine2D, IdentityTransform

Color = tuple[float, float, float]  # RGB in 0..255 (floats allowed)


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
