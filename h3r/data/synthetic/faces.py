"""SyntheticFaces: a parametric face in the 68-point iBUG layout with exact landmarks.

The face model (:func:`face_model`)
    A face is a set of 3D points in units of its half-width (ear to midline): x to the image
    right, y down (0 on the eye line), z towards the camera. :class:`FaceShape` sets the shape
    (face width and length, jaw squareness, eye size and spacing, nose and mouth size) and the
    expression (mouth opening, smile, brow raise, eye closure, gaze). The head turns by yaw and
    pitch under an orthographic camera. The jaw contour and the skull outline are *occluding
    contours*, whose width barely changes with yaw, while the inner features (eyes, brows, nose,
    mouth, chin) turn with the face; so the far side is foreshortened, the nose/mouth midline
    moves towards it, and the jaw points stay on the visible outline of the cheek. Every definition
    is mirror-symmetric: mirroring a face's landmarks (and re-ordering them by the layout's
    ``flip_index``) gives the landmarks of the mirrored shape (:meth:`FaceShape.mirrored`).

Rendering (:func:`draw_face`)
    The landmarks are vertices of the drawn outlines (the skin region is bounded by the jaw, the
    eye by its eyelids, the lips by the lip contours) or lie on the axis of drawn strokes (brows,
    nose ridge, nose base); Catmull-Rom curves through them pass through them exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from h3r.data.layouts import IBUG68
from h3r.data.synthetic.base import Scene, SyntheticDataset
from h3r.data.synthetic.canvas import Canvas, ellipse, place, ribbon, spline, transform
from h3r.data.synthetic.scene import (BLUR_SIGMA, HAIR, IRIS, LARGE_POSE_DEG, OCCLUDED_FRACTION, OCCLUDER, SKIN,
                                      STRONG_LIGHT, Nuisance)

JAW_TOP = 0.05  # height of jaw points 0 and 16 (at the ears), just below the eye line
# fixed parameters of the outlines: jaw (17 points), brow (5), eyes (2 x 6), skull, hair
_JAW_COS, _JAW_SIN = -np.cos(np.linspace(0, np.pi, 17)), np.sin(np.linspace(0, np.pi, 17))
_BROW_T = np.linspace(0, 1, 5)
_EYE_SIDE = np.repeat([-1.0, 1.0], 6)
_EYE_S = np.tile([-1, -1 / 3, 1 / 3, 1, 1 / 3, -1 / 3], 2)
_EYE_UPPER = np.tile([True, True, True, True, False, False], 2)
_SKULL_COS, _SKULL_SIN = np.cos(np.linspace(0, np.pi, 25)), np.sin(np.linspace(0, np.pi, 25))
_HAIR_T = np.linspace(-0.12, np.pi + 0.12, 25)
_HAIR_COS, _HAIR_SIN = np.cos(_HAIR_T), np.sin(_HAIR_T)



@dataclass(frozen=True)
class FaceShape:
    """Geometry and expression of one face, in units of the face's half-width."""

    width: float = 1.0          # half-width at the ears
    chin: float = 1.7           # eye line to chin
    jaw_square: float = 0.8     # superellipse exponent of the jaw (< 1: squarer)
    eye_spacing: float = 0.44   # midline to eye centre
    eye_size: float = 0.2       # half-width of an eye
    nose_length: float = 0.68   # eye line to the base of the nose
    nose_width: float = 0.19    # half-width of the nose base
    mouth_width: float = 0.35   # half-width of the mouth
    mouth_open: float = 0.0     # gap between the lips
    smile: float = 0.0          # lift of the mouth corners (negative: frown)
    brow_raise: float = 0.0
    eye_closure: float = 0.0    # 0 open, 1 closed
    gaze: tuple[float, float] = (0.0, 0.0)  # iris offset in [-1, 1], x to the image right
    yaw: float = 0.0            # degrees; positive turns the nose to the image right
    pitch: float = 0.0          # degrees; positive turns the face down

    def mirrored(self) -> "FaceShape":
        """The shape of this face seen in a mirror."""
        return replace(self, yaw=-self.yaw, gaze=(-self.gaze[0], self.gaze[1]))


SILHOUETTE = {"jaw", "skull", "hair", "hairline", "ear_left", "ear_right", "neck"}  # occluding contours


def _project(parts: dict[str, np.ndarray], f: FaceShape) -> dict[str, np.ndarray]:
    """Orthographic view of 3D points (name -> (n, 3)) after yaw and pitch -> (name -> (n, 2)).

    Points on an occluding contour (:data:`SILHOUETTE`) keep their width and only follow the
    depth shift of the features.
    """
    sizes = [len(p) for p in parts.values()]
    x, y, z = np.concatenate(list(parts.values())).T
    on_contour = np.repeat([name in SILHOUETTE for name in parts], sizes)
    yaw, pitch = math.radians(f.yaw), math.radians(f.pitch)
    depth = np.where(on_contour, z, z * math.cos(yaw) - x * math.sin(yaw))
    xy = np.stack([np.where(on_contour, x, x * math.cos(yaw)) + z * math.sin(yaw),
                   np.where(on_contour, y, y * math.cos(pitch)) + depth * math.sin(pitch)], 1)
    return dict(zip(parts, np.split(xy, np.cumsum(sizes)[:-1])))


def _mirror(xyz: np.ndarray) -> np.ndarray:
    return xyz * np.array([-1.0, 1.0, 1.0])


def _flat(xy: np.ndarray) -> np.ndarray:
    """(n, 2) -> (n, 3) at depth 0."""
    return np.concatenate([xy, np.zeros((len(xy), 1))], 1)


def face_model(f: FaceShape) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The 68 landmarks (68, 2) and the other outlines (name -> (n, 2)) in face units."""
    w, es, n = f.width, f.eye_size, f.nose_length
    # jaw 0-16: a superellipse from ear to ear under the chin; its front (chin) has depth
    c, s = _JAW_COS, _JAW_SIN
    chin = f.chin + 0.45 * f.mouth_open
    jaw = np.stack([w * np.sign(c) * np.abs(c) ** f.jaw_square,
                    JAW_TOP + (chin - JAW_TOP) * s ** f.jaw_square, 0.6 * s**2], 1)
    # brows 17-21 (image left, outer to inner) and 22-26 (mirrored, inner to outer)
    t = _BROW_T
    brow = np.stack([-(f.eye_spacing + 1.3 * es) + 2.35 * es * t,
                     -0.28 - f.brow_raise - 0.1 * np.sin(np.pi * (0.15 + 0.7 * t)) - 0.02 * t,
                     0.35 + 0.15 * t], 1)
    # nose bridge 27-30 (to the tip) and base 31-35
    bridge = np.array([[0, -0.02, 0.5], [0, 0.29 * n, 0.62], [0, 0.58 * n, 0.76], [0, 0.86 * n, 0.92]])
    k = np.array([-1, -0.5, 0, 0.5, 1])
    base = np.stack([f.nose_width * k, n - 0.06 * k**2 - 0.015 * np.abs(k), 0.75 - 0.2 * k**2], 1)
    # eyes 36-41 and 42-47, each: left corner, two upper-lid points, right corner, two lower-lid
    # points; the outer corners sit a little higher and further back
    side, s_eye, upper = _EYE_SIDE, _EYE_S, _EYE_UPPER
    outer = (1 + side * s_eye) / 2  # 1 at the outer corner
    bulge, corner = 1 - s_eye**2, -0.03 * outer
    up, lo = 0.55 * es, 0.32 * es
    lid = np.where(upper, corner - bulge * (up * (1 - f.eye_closure) - 0.85 * lo * f.eye_closure),
                   corner + bulge * lo)
    eyes = np.stack([side * f.eye_spacing + s_eye * es, lid, 0.45 - 0.12 * outer], 1)
    # mouth: outer 48-59, inner 60-67, around a lip line lifted at the corners by the smile
    mw, my = f.mouth_width, n + 0.3

    def line(u):
        return my - 0.07 * f.smile * u**2

    def gap(u):
        return f.mouth_open * np.clip(1 - (u / 0.9) ** 2, 0, None) ** 0.8

    def upper_inner(u):
        return line(u) - 0.3 * gap(u)

    def lower_inner(u):
        return line(u) + 0.7 * gap(u)

    def upper_outer(u):  # Cupid's bow: two peaks beside a central dip
        return upper_inner(u) - 0.08 * np.sqrt(1 - u**2) * (1 - 0.2 * np.exp(-((u / 0.15) ** 2)))

    def lower_outer(u):
        return lower_inner(u) + 0.1 * np.clip(1 - u**2, 0, None) ** 0.6

    u_up, u_lo = np.array([-1, -0.62, -0.22, 0, 0.22, 0.62, 1]), np.array([0.62, 0.25, 0, -0.25, -0.62])
    u_in_up, u_in_lo = np.array([-0.9, -0.4, 0, 0.4, 0.9]), np.array([0.4, 0, -0.4])
    u = np.concatenate([u_up, u_lo, u_in_up, u_in_lo])
    mouth = np.stack([mw * u, np.concatenate([upper_outer(u_up), lower_outer(u_lo), upper_inner(u_in_up),
                                              lower_inner(u_in_lo)]), 0.45 + 0.2 * (1 - u**2)], 1)

    cos, sin = _SKULL_COS, _SKULL_SIN
    turn = math.sin(math.radians(f.yaw))
    alar = np.array([[0.75 * f.nose_width, n - 0.22, 0.6], [1.12 * f.nose_width, n - 0.1, 0.55],
                     [f.nose_width, n - 0.075, 0.55]])  # a nostril wing, ending on point 35
    points = _project({
        "jaw": jaw,
        "inner": np.concatenate([brow, _mirror(brow)[::-1], bridge, base, eyes, mouth]),
        "skull": np.stack([w * np.sign(cos) * np.abs(cos) ** 0.8, JAW_TOP - 1.5 * sin**0.8, 0 * cos], 1),
        "hair": np.stack([1.08 * w * _HAIR_COS, JAW_TOP - 1.65 * _HAIR_SIN, 0 * _HAIR_SIN], 1),
        "hairline": np.array([[-0.99 * w, 0.12, 0], [-0.92 * w, -0.55, 0.2], [-0.5 * w, -0.86, 0.4],
                              [0, -0.94, 0.5], [0.5 * w, -0.86, 0.4], [0.92 * w, -0.55, 0.2],
                              [0.99 * w, 0.12, 0]]),
        # the ear on the side the face turns to hides behind the head
        "ear_left": _flat(ellipse((-w - 0.02, 0.25), (0.1 * min(max(1 + 1.6 * turn, 0.01), 1.5), 0.2))),
        "ear_right": _flat(ellipse((w + 0.02, 0.25), (0.1 * min(max(1 - 1.6 * turn, 0.01), 1.5), 0.2))),
        "neck": np.array([[-0.42 * w, 0.8, 0.2], [0.42 * w, 0.8, 0.2], [0.5 * w, 3.5, 0.2],
                          [-0.5 * w, 3.5, 0.2]]),
        "iris": np.array([[e * f.eye_spacing + 0.3 * es * f.gaze[0], -0.2 * up + 0.25 * up * f.gaze[1], 0.5]
                          for e in (-1, 1)]),
        "nostrils": np.array([[-0.55 * f.nose_width, n - 0.045, 0.65],
                              [0.55 * f.nose_width, n - 0.045, 0.65]]),
        "alar_left": _mirror(alar),
        "alar_right": alar,
    }, f)
    landmarks = np.concatenate([points.pop("jaw"), points.pop("inner")])
    return landmarks, points


def sample_face_shape(rng: np.random.Generator, nuisance: Nuisance) -> tuple[FaceShape, float]:
    """A random face shape and its in-plane rotation (degrees)."""
    if rng.random() < nuisance.p_large_pose:
        yaw = rng.choice([-1, 1]) * rng.uniform(25, 50)
        roll = float(np.clip(rng.normal(0, 25), -60, 60))
    else:
        yaw = float(np.clip(rng.normal(0, 12), -30, 30))
        roll = float(np.clip(rng.normal(0, 8), -25, 25))
    if rng.random() < nuisance.p_expression:
        mouth_open = rng.uniform(0.1, 0.3) if rng.random() < 0.5 else rng.uniform(0, 0.04)
        smile = rng.choice([-0.6, 1]) * rng.uniform(0.5, 1) if rng.random() < 0.5 else rng.uniform(-0.2, 0.3)
        brow_raise = rng.uniform(0.06, 0.12) if rng.random() < 0.4 else rng.uniform(-0.03, 0.03)
        eye_closure = rng.uniform(0.6, 1) if rng.random() < 0.25 else rng.uniform(0, 0.25)
    else:
        mouth_open = rng.uniform(0, 0.05) * (rng.random() < 0.3)
        smile, brow_raise, eye_closure = rng.uniform(-0.2, 0.3), rng.uniform(-0.03, 0.03), rng.uniform(0, 0.25)
    shape = FaceShape(
        width=rng.uniform(0.92, 1.08), chin=rng.uniform(1.55, 1.85), jaw_square=rng.uniform(0.6, 0.95),
        eye_spacing=rng.uniform(0.4, 0.48), eye_size=rng.uniform(0.17, 0.22),
        nose_length=rng.uniform(0.6, 0.75), nose_width=rng.uniform(0.16, 0.22),
        mouth_width=rng.uniform(0.3, 0.4), mouth_open=float(mouth_open), smile=float(smile),
        brow_raise=float(brow_raise), eye_closure=float(eye_closure),
        gaze=(float(rng.uniform(-1, 1)), float(rng.uniform(-0.6, 0.6))),
        yaw=float(yaw), pitch=float(np.clip(rng.normal(0, 5), -12, 12)))
    return shape, roll


def draw_face(canvas: Canvas, rng: np.random.Generator, f: FaceShape, model, matrix: np.ndarray,
              skin: np.ndarray) -> np.ndarray:
    """Paint the face ``model = face_model(f)`` mapped to pixels by the similarity ``matrix``
    (2x3); returns its landmarks (68, 2) in pixels."""
    landmarks, parts = model
    px = {name: transform(p, matrix) for name, p in parts.items()}
    p = transform(landmarks, matrix)
    unit_px = float(np.hypot(*matrix[:, 0]))  # pixels per face unit
    up_px = matrix[:, :2] @ np.array([0.0, -1.0])  # the face's "up" as a pixel offset of one unit
    right_px = matrix[:, :2] @ np.array([1.0, 0.0])
    roll = math.degrees(math.atan2(matrix[1, 0], matrix[0, 0]))
    hair_color = HAIR[rng.integers(len(HAIR))] * rng.uniform(0.8, 1.2)
    lip_color = skin * np.array([0.85, 0.55, 0.55]) + rng.normal(0, 8, 3)

    hair_style = rng.choice(["short", "long", "bald"], p=[0.5, 0.35, 0.15])
    if hair_style == "long":
        top = px["hair"]
        fall = transform(np.array([[-1.25, 1.4], [-1.3, 2.6], [1.3, 2.6], [1.25, 1.4]]), matrix)
        canvas.fill(np.concatenate([fall[2:], top, fall[:2]]), hair_color * 0.85)
    clothes = transform(ellipse((0, 3.1), (2.3, 0.95)), matrix)
    canvas.fill(clothes, rng.uniform(20, 235, 3))
    canvas.fill(px["neck"], skin * 0.82)
    canvas.fill([px["ear_left"], px["ear_right"]], skin * 0.92)
    canvas.fill(np.concatenate([spline(p[0:17]), px["skull"][1:-1]]), skin)
    if hair_style != "bald":
        canvas.fill(np.concatenate([px["hair"], spline(px["hairline"])]), hair_color)

    # eyes: white, iris and pupil, then skin over whatever of the iris is outside the lids
    uppers = [spline(p[i:i + 4]) for i in (36, 42)]
    lowers = [spline(p[[i + 3, i + 4, i + 5, i]]) for i in (36, 42)]
    canvas.fill([np.concatenate([u, l[1:-1]]) for u, l in zip(uppers, lowers)], (235, 232, 225))
    r = 0.45 * f.eye_size * unit_px
    squash = math.cos(math.radians(f.yaw))
    canvas.fill([ellipse(c, (r * squash, r), roll) for c in px["iris"]], IRIS[rng.integers(len(IRIS))])
    canvas.fill([ellipse(c, (0.45 * r * squash, 0.45 * r), roll) for c in px["iris"]], (15, 12, 12))
    canvas.fill([ellipse(c + 0.3 * r * (up_px - right_px) / unit_px, (0.15 * r, 0.15 * r)) for c in px["iris"]],
                (250, 250, 250))
    lid = 0.35 * up_px
    canvas.fill([np.concatenate([u, (u + lid)[::-1]]) for u in uppers], skin)
    canvas.fill([np.concatenate([l, (l - lid)[::-1]]) for l in lowers], skin)
    canvas.stroke([u + 0.45 * f.eye_size * up_px for u in uppers], 0.012 * unit_px, skin * 0.75)  # creases
    canvas.stroke(uppers, 0.03 * unit_px, (30, 20, 20))  # lashes

    # brows: tapered strokes, thick at the inner end; the landmarks are on their axis
    taper = np.linspace(0.014, 0.036, len(spline(p[17:22])))
    canvas.fill([ribbon(spline(p[17:22]), taper * unit_px), ribbon(spline(p[22:27]), taper[::-1] * unit_px)],
                hair_color * 0.8)

    # nose: a lit ridge with a shadowed side, nostril wings, nostrils, the base line
    shade = 1 if f.yaw <= 0 else -1  # the side turning away from the camera is in shadow
    canvas.stroke(spline(p[27:31]) + 0.06 * shade * right_px, 0.05 * unit_px, skin * 0.86)
    canvas.stroke(spline(p[27:31]), 0.035 * unit_px, skin * 1.07)
    canvas.stroke([spline(px["alar_left"]), spline(px["alar_right"])], 0.025 * unit_px, skin * 0.72)
    canvas.fill([ellipse(c, (0.045 * unit_px * squash, 0.022 * unit_px), roll) for c in px["nostrils"]],
                skin * 0.35)
    canvas.stroke(spline(p[31:36]), 0.022 * unit_px, skin * 0.7)

    # mouth: the opening (with teeth), then the lower and the upper lip over its edges
    inner_up, inner_lo = spline(p[60:65]), spline(p[[64, 65, 66, 67, 60]])
    if f.mouth_open > 0.02:
        canvas.fill(np.concatenate([inner_up, inner_lo[1:-1]]), (70, 25, 30))
        teeth = min(0.06, 0.6 * f.mouth_open) * up_px
        canvas.fill(np.concatenate([inner_up, (inner_up - teeth)[::-1]]), (235, 230, 215))
    canvas.fill(np.concatenate([spline(p[[54, 55, 56, 57, 58, 59, 48]]), spline(p[[60, 67, 66, 65, 64]])]),
                lip_color)
    canvas.fill(np.concatenate([spline(p[48:55]), inner_up[::-1]]), lip_color * 0.88)
    canvas.stroke(spline(p[[48, 60, 61, 62, 63, 64, 54]]), 0.02 * unit_px, lip_color * 0.45)
    return p


class SyntheticFaces(SyntheticDataset):
    """Procedural faces with the 68 iBUG landmarks (see :mod:`h3r.data.synthetic` and this module).

    Samples carry ``occluded`` (K,) and ``subsets`` flags ``pose`` (|yaw| or |roll| >= 30 deg),
    ``expression``, ``occlusion`` (>= 10% of the landmarks covered), ``blur`` and
    ``illumination``, as WFLW's test subsets. ``normalizer`` is the inter-ocular distance.
    """

    name = "synthetic_faces"
    layout = IBUG68
    subset_names = ("pose", "expression", "illumination", "occlusion", "blur")

    def place_subject(self, rng: np.random.Generator) -> FacePlacement:
        shape, roll = sample_face_shape(rng, self.nuisance)
        model = face_model(shape)
        matrix = place(model[0], self.input_size, roll, rng.uniform(0.5, 0.75), rng)
        skin = SKIN[rng.integers(len(SKIN))] * rng.uniform(0.92, 1.05) + rng.normal(0, 6, 3)
        size_px = 2 * shape.width * float(np.hypot(*matrix[:, 0]))
        return FacePlacement(shape, roll, model, matrix, skin, size_px)

    def paint_subject(self, canvas: Canvas, rng: np.random.Generator, face: FacePlacement) -> tuple[np.ndarray, dict]:
        return draw_face(canvas, rng, face.shape, face.model, face.matrix, face.skin), {}

    def occluder_skin(self, rng: np.random.Generator, face: FacePlacement) -> np.ndarray:
        return face.skin

    def describe(self, face: FacePlacement, drawn: dict, image: np.ndarray, keypoints: np.ndarray,
                 on_top: np.ndarray, look: dict) -> Scene:
        shape = face.shape
        occluded = on_top == OCCLUDER
        i, j = IBUG68.normalizer_index
        subsets = {
            "pose": max(abs(shape.yaw), abs(face.roll)) >= LARGE_POSE_DEG,
            "expression": bool(shape.mouth_open >= 0.1 or abs(shape.smile) >= 0.5 or shape.brow_raise >= 0.06
                               or shape.eye_closure >= 0.5),
            "illumination": look["light"] >= STRONG_LIGHT,
            "occlusion": bool(occluded.mean() >= OCCLUDED_FRACTION),
            "blur": look["blur"] >= BLUR_SIGMA,
        }
        params = {"yaw": shape.yaw, "pitch": shape.pitch, "roll": face.roll, **look}
        return Scene(image, keypoints, occluded, float(np.linalg.norm(keypoints[i] - keypoints[j])),
                     subsets, params)


@dataclass
class FacePlacement:
    """A face before it is painted: its shape, in-plane rotation, model (landmarks and outlines in
    face units), the similarity to pixels (2x3), skin tone (RGB) and width in pixels."""

    shape: FaceShape
    roll: float
    model: tuple
    matrix: np.ndarray
    skin: np.ndarray
    size_px: float
