"""Everything around the subject of a synthetic sample: how hard a split is, the backdrop, the
clutter, the occluders and the camera (illumination, optics, sensor noise), and the palettes
that faces and figures share.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from h3r.data.synthetic.canvas import Canvas, Color, capsule, ellipse, rectangle, spline, unit

OCCLUDER = 255  #: label of occluding objects in :meth:`Canvas.covering`

SKIN = np.array([(250, 220, 195), (235, 190, 150), (220, 170, 120), (190, 135, 90), (140, 90, 55),
                 (95, 62, 40)], dtype=np.float64)
HAIR = np.array([(25, 18, 14), (60, 40, 25), (105, 70, 40), (190, 150, 90), (150, 150, 150),
                 (130, 60, 30)], dtype=np.float64)
IRIS = np.array([(75, 50, 30), (45, 95, 140), (65, 110, 70), (95, 95, 105)], dtype=np.float64)

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
DIFFICULTY = {"train": NORMAL, "test": NORMAL, "test_hard": HARD, "val": NORMAL}

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
