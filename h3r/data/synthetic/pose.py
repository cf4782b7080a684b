"""SyntheticPose: articulated figures with the 16 MPII joints and exact joint positions.

The body model (:func:`body_model`)
    A kinematic tree rooted at the pelvis, in units of the torso length: the torso leans, the
    neck and head bend, and each limb turns at its root and bends at its middle joint, with
    angles measured *outwards* from hanging down on the limb's own side. The body turns about
    its vertical axis by ``yaw`` (0: facing the camera, 180: seen from behind), which narrows
    shoulders and hips by ``|cos(yaw)|`` and decides which side is near the camera.

Left and right
    A person's right side appears on the image's left when they face the camera and on its
    right when seen from behind, so the flip pairs are learnable from cues that survive a
    mirror: the figure faces the camera (eyes, a V-neck) or not (hair, a plain back), and the
    limbs turned away from the camera are darker and drawn behind the torso. Colour-coding the
    sides would contradict flip augmentation (a mirrored right arm keeps its colour but becomes
    the left arm), so no cue here depends on the side itself. :meth:`BodyShape.mirrored` gives
    the mirrored figure: its joints are the mirrored joints re-ordered by ``MPII16.flip_index``.

Rendering (:func:`draw_body`)
    Limbs are tapered capsules whose axes run from joint to joint, the torso a polygon through
    the shoulders and hips (the joints are on its outline or axis), the head an ellipse whose
    major axis runs from the upper neck to the head top. A joint is ``occluded`` when an
    occluder or a body part not attached to it lies on top of it. The head box (for PCKh) is
    the axis-aligned box of the head ellipse; ``normalizer = 0.6 * its diagonal``, as MPII.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from h3r.data.layouts import MPII16, MPII_HEAD_SCALE
from h3r.data.synthetic.base import Scene, SyntheticDataset
from h3r.data.synthetic.canvas import Canvas, capsule, ellipse, place, transform, unit
from h3r.data.synthetic.scene import (BLUR_SIGMA, HAIR, OCCLUDED_FRACTION, OCCLUDER, SKIN, STRONG_LIGHT,
                                      Nuisance)

# joint indices (MPII order)
R_ANKLE, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANKLE, PELVIS, THORAX, NECK, HEAD_TOP, \
    R_WRIST, R_ELBOW, R_SHOULDER, L_SHOULDER, L_ELBOW, L_WRIST = range(16)
LARGE_ROLL_DEG = 45.0  # the "pose" subset: rotated at least this much, or seen in profile

# limbs: (name, root joint, end joint, root radius, end radius) per side; radii in torso lengths
LIMBS = {
    "right": (("thigh", R_HIP, R_KNEE, 0.13, 0.1), ("shin", R_KNEE, R_ANKLE, 0.1, 0.07),
              ("upper_arm", R_SHOULDER, R_ELBOW, 0.085, 0.07), ("forearm", R_ELBOW, R_WRIST, 0.07, 0.055)),
    "left": (("thigh", L_HIP, L_KNEE, 0.13, 0.1), ("shin", L_KNEE, L_ANKLE, 0.1, 0.07),
             ("upper_arm", L_SHOULDER, L_ELBOW, 0.085, 0.07), ("forearm", L_ELBOW, L_WRIST, 0.07, 0.055)),
}
EXTREMITIES = {"right": (R_ELBOW, R_WRIST, R_KNEE, R_ANKLE), "left": (L_ELBOW, L_WRIST, L_KNEE, L_ANKLE)}
# labels of the parts for self-occlusion, and the parts each joint belongs to
PART = {"torso": 1, "neck": 2, "head": 3, "right_thigh": 4, "right_shin": 5, "right_foot": 6,
        "left_thigh": 7, "left_shin": 8, "left_foot": 9, "right_upper_arm": 10, "right_forearm": 11,
        "right_hand": 12, "left_upper_arm": 13, "left_forearm": 14, "left_hand": 15}
ATTACHED = (
    ("right_shin", "right_foot"), ("right_thigh", "right_shin"), ("right_thigh", "torso"),
    ("left_thigh", "torso"), ("left_thigh", "left_shin"), ("left_shin", "left_foot"),
    ("torso", "right_thigh", "left_thigh"), ("torso", "neck", "right_upper_arm", "left_upper_arm"),
    ("neck", "head"), ("head",),
    ("right_forearm", "right_hand"), ("right_upper_arm", "right_forearm"), ("right_upper_arm", "torso"),
    ("left_upper_arm", "torso"), ("left_upper_arm", "left_forearm"), ("left_forearm", "left_hand"),
)


@dataclass(frozen=True)
class BodyShape:
    """Pose and proportions of one figure; angles in degrees, lengths in torso lengths.

    Per-side values are ``(right, left)``; limb angles are measured outwards from hanging down.
    """

    yaw: float = 0.0                 # 0 faces the camera, +-180 shows the back; > 0 turns to the image right
    lean: float = 0.0                # torso, clockwise from upright
    neck: float = 0.0                # neck bend relative to the torso
    head: float = 0.0                # head bend relative to the neck
    shoulder: tuple[float, float] = (15.0, 15.0)
    elbow: tuple[float, float] = (10.0, 10.0)
    hip: tuple[float, float] = (5.0, 5.0)
    knee: tuple[float, float] = (0.0, 0.0)
    arm: float = 1.0                 # scale of upper arm and forearm
    leg: float = 1.0                 # scale of thigh and shin
    width: float = 1.0               # scale of shoulders and hips

    def mirrored(self) -> "BodyShape":
        """The pose of this figure seen in a mirror."""
        swap = lambda pair: (pair[1], pair[0])  # noqa: E731
        return replace(self, yaw=-self.yaw, lean=-self.lean, neck=-self.neck, head=-self.head,
                       shoulder=swap(self.shoulder), elbow=swap(self.elbow), hip=swap(self.hip),
                       knee=swap(self.knee))

    @property
    def right_side(self) -> int:
        """-1 if the person's right side is on the image's left (facing the camera), else +1."""
        return -1 if math.cos(math.radians(self.yaw)) >= 0 else 1


def body_model(b: BodyShape) -> np.ndarray:
    """The 16 joints (16, 2) in torso lengths, pelvis at the origin, y down."""
    j = np.zeros((16, 2))
    j[THORAX] = unit(b.lean)
    j[NECK] = j[THORAX] + 0.2 * unit(b.lean + b.neck)
    j[HEAD_TOP] = j[NECK] + 0.45 * unit(b.lean + b.neck + b.head)
    across = unit(b.lean + 90) * abs(math.cos(math.radians(b.yaw))) * b.width
    down = b.lean + 180
    for side, (shoulder, hip, elbow, knee, wrist, ankle, index) in zip(
            (b.right_side, -b.right_side),
            ((R_SHOULDER, R_HIP, R_ELBOW, R_KNEE, R_WRIST, R_ANKLE, 0),
             (L_SHOULDER, L_HIP, L_ELBOW, L_KNEE, L_WRIST, L_ANKLE, 1))):
        j[shoulder] = j[THORAX] + side * 0.38 * across
        j[hip] = side * 0.2 * across
        upper = down - side * b.shoulder[index]
        j[elbow] = j[shoulder] + 0.62 * b.arm * unit(upper)
        j[wrist] = j[elbow] + 0.56 * b.arm * unit(upper - side * b.elbow[index])
        thigh = down - side * b.hip[index]
        j[knee] = j[hip] + 0.9 * b.leg * unit(thigh)
        j[ankle] = j[knee] + 0.86 * b.leg * unit(thigh - side * b.knee[index])
    return j


def sample_body_shape(rng: np.random.Generator, nuisance: Nuisance) -> tuple[BodyShape, float]:
    """A random figure and its in-plane rotation (degrees)."""
    if rng.random() < nuisance.p_large_pose:
        roll = float(rng.choice([-1, 1]) * rng.uniform(LARGE_ROLL_DEG, 180))
    else:
        roll = float(np.clip(rng.normal(0, 10), -30, 30))
    yaw = rng.normal(0, 40) if rng.random() < 0.75 else rng.normal(180, 40)
    yaw = float((yaw + 180) % 360 - 180)
    # knees bend backwards: towards the image side opposite the one the figure turns to
    turn = math.sin(math.radians(yaw))
    right = -1 if math.cos(math.radians(yaw)) >= 0 else 1
    knee = []
    for side in (right, -right):
        backwards = -np.sign(turn) * side if abs(turn) > 0.35 else rng.choice([-1, 1])
        knee.append(float(backwards * rng.uniform(0, 110) * rng.random()))
    shape = BodyShape(
        yaw=yaw, lean=float(rng.normal(0, 12)), neck=float(rng.normal(0, 10)), head=float(rng.normal(0, 12)),
        shoulder=tuple(float(v) for v in rng.uniform(-20, 170, 2)),
        elbow=tuple(float(v) for v in rng.uniform(-140, 140, 2) * rng.random(2)),
        hip=tuple(float(v) for v in rng.uniform(-25, 70, 2) * rng.random(2)),
        knee=tuple(knee), arm=float(rng.uniform(0.9, 1.1)), leg=float(rng.uniform(0.9, 1.1)),
        width=float(rng.uniform(0.85, 1.15)))
    return shape, roll


def draw_body(canvas: Canvas, rng: np.random.Generator, b: BodyShape, joints: np.ndarray,
              scale: float) -> np.ndarray:
    """Paint a figure with ``joints`` (16, 2) in pixels, ``scale`` pixels per torso length.
    Returns the head ellipse as a polygon (n, 2) in pixels."""
    skin = SKIN[rng.integers(len(SKIN))] * rng.uniform(0.92, 1.05)
    shirt, trousers = rng.uniform(20, 235, 3), rng.uniform(20, 200, 3)
    hair = HAIR[rng.integers(len(HAIR))]
    long_sleeves, long_trousers = rng.random() < 0.6, rng.random() < 0.8
    colors = {"thigh": trousers, "shin": trousers if long_trousers else skin, "upper_arm": shirt,
              "forearm": shirt if long_sleeves else skin}
    yaw = math.radians(b.yaw)
    near_right = math.sin(yaw) >= 0  # the person's right side turns towards the camera
    up = _direction(joints[PELVIS], joints[THORAX])
    side_dir = np.array([-up[1], up[0]])  # the figure's image-right

    def limbs(side: str, shade: float) -> None:
        for name, root, end, r0, r1 in LIMBS[side]:
            canvas.fill(capsule(joints[root], joints[end], r0 * scale, r1 * scale), colors[name] * shade,
                        PART[f"{side}_{name}"])
        elbow, wrist, knee, ankle = joints[list(EXTREMITIES[side])]
        hand = wrist + 0.07 * scale * _direction(elbow, wrist)
        canvas.fill(ellipse(hand, (0.075 * scale, 0.06 * scale), _angle(elbow, wrist)), skin * shade,
                    PART[f"{side}_hand"])
        foot_dir = _direction(knee, ankle) * 0.3 + math.sin(yaw) * side_dir  # toes point forwards
        foot = ankle + 0.09 * scale * foot_dir / max(np.linalg.norm(foot_dir), 1e-6)
        canvas.fill(ellipse(foot, (0.12 * scale, 0.055 * scale), math.degrees(math.atan2(*foot_dir[::-1]))),
                    (40, 35, 35) if long_trousers else skin * shade, PART[f"{side}_foot"])

    far, near = ("left", "right") if near_right else ("right", "left")
    turned = abs(math.sin(yaw)) > 0.35
    if turned:  # the far side is behind the torso and in its shadow
        limbs(far, 0.7)

    # torso: shoulders to hips, never thinner than the body's depth
    across = joints[L_SHOULDER] - joints[R_SHOULDER]
    half_top = max(abs(across @ side_dir) / 2 + 0.06 * scale, 0.18 * scale)
    half_hip = max(abs((joints[L_HIP] - joints[R_HIP]) @ side_dir) / 2 + 0.08 * scale, 0.16 * scale)
    torso = np.array([joints[THORAX] - half_top * side_dir, joints[THORAX] + half_top * side_dir,
                      joints[PELVIS] + half_hip * side_dir, joints[PELVIS] - half_hip * side_dir])
    canvas.fill(torso, shirt, PART["torso"])
    canvas.fill(capsule(joints[PELVIS] - half_hip * side_dir, joints[PELVIS] + half_hip * side_dir,
                        0.08 * scale, 0.08 * scale), trousers, PART["torso"])
    facing = math.cos(yaw) > 0.2
    if facing:  # a V-neck shows the chest
        v = joints[THORAX] + 0.04 * scale * up
        canvas.fill(np.array([v - 0.09 * scale * side_dir, v + 0.09 * scale * side_dir, v - 0.2 * scale * up]),
                    skin)

    # neck and head; the face (or the back of the head) shows which way the figure faces
    canvas.fill(capsule(joints[THORAX], joints[NECK], 0.065 * scale, 0.06 * scale), skin * 0.9, PART["neck"])
    center = (joints[NECK] + joints[HEAD_TOP]) / 2
    length = float(np.linalg.norm(joints[HEAD_TOP] - joints[NECK]))
    head_axis = _direction(joints[NECK], joints[HEAD_TOP])
    head_angle = _angle(joints[NECK], joints[HEAD_TOP])
    head = ellipse(center, (length / 2, 0.4 * length), head_angle, n=64)
    canvas.fill(head, skin, PART["head"])
    head_side = np.array([-head_axis[1], head_axis[0]])
    turn = math.sin(yaw)
    if facing:
        hair_cap = ellipse(center + 0.12 * length * head_axis - 0.1 * turn * length * head_side,
                           (0.38 * length, 0.39 * length), head_angle, n=32)  # flush with the head top
        canvas.fill(_clip_cap(hair_cap, center + 0.12 * length * head_axis, head_axis), hair)
        eyes = [center + 0.02 * length * head_axis
                + (0.3 * turn + s * 0.14 * math.cos(yaw)) * length * head_side for s in (-1, 1)]
        canvas.fill([ellipse(e, (0.035 * length, 0.035 * length)) for e in eyes], (30, 25, 25))
        mouth = center - 0.22 * length * head_axis + 0.3 * turn * length * head_side
        canvas.stroke(np.array([mouth - 0.08 * length * head_side, mouth + 0.08 * length * head_side]),
                      0.03 * length, skin * 0.55)
    else:  # seen from behind: hair over most of the head
        back = ellipse(center + 0.06 * length * head_axis, (0.44 * length, 0.39 * length), head_angle, n=48)
        canvas.fill(back, hair)

    limbs(near, 1.0)
    if not turned:
        limbs(far, 0.9)
    return head


def _direction(a, b) -> np.ndarray:
    d = np.asarray(b, dtype=np.float64) - a
    return d / max(float(np.linalg.norm(d)), 1e-9)


def _angle(a, b) -> float:
    """Angle of the vector a -> b from the x axis, degrees."""
    return math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))


def _clip_cap(polygon: np.ndarray, origin, axis) -> np.ndarray:
    """The part of a convex polygon on the ``axis`` side of the line through ``origin``."""
    keep = (polygon - origin) @ axis >= 0
    return polygon[keep] if keep.sum() >= 3 else polygon


class SyntheticPose(SyntheticDataset):
    """Procedural figures with the 16 MPII joints (see :mod:`h3r.data.synthetic` and this module).

    Samples carry ``head_box`` (4,) ``x1, y1, x2, y2``, ``normalizer`` = 0.6 x its diagonal,
    ``occluded`` (K,) and ``subsets`` flags ``pose`` (rotated by >= 45 deg or seen in profile),
    ``back`` (seen from behind), ``occlusion``, ``blur`` and ``illumination``.
    """

    name = "synthetic_pose"
    layout = MPII16
    subset_names = ("pose", "back", "illumination", "occlusion", "blur")

    clutter_range = (3, 10)

    def place_subject(self, rng: np.random.Generator) -> FigurePlacement:
        shape, roll = sample_body_shape(rng, self.nuisance)
        model = body_model(shape)
        matrix = place(model, self.input_size, roll, rng.uniform(0.6, 0.85), rng)
        scale = float(np.hypot(*matrix[:, 0]))
        return FigurePlacement(shape, roll, transform(model, matrix), scale, 1.2 * scale)

    def paint_subject(self, canvas: Canvas, rng: np.random.Generator,
                      figure: FigurePlacement) -> tuple[np.ndarray, dict]:
        head = draw_body(canvas, rng, figure.shape, figure.joints, figure.scale)
        return figure.joints, {"head": head}

    def occluder_skin(self, rng: np.random.Generator, figure: FigurePlacement) -> np.ndarray:
        return SKIN[rng.integers(len(SKIN))]

    def describe(self, figure: FigurePlacement, drawn: dict, image: np.ndarray, keypoints: np.ndarray,
                 on_top: np.ndarray, look: dict) -> Scene:
        shape, roll = figure.shape, figure.roll
        by_occluder = on_top == OCCLUDER
        attached = np.array([on_top[k] in {0, *(PART[p] for p in parts)} for k, parts in enumerate(ATTACHED)])
        head_box = np.concatenate([drawn["head"].min(0), drawn["head"].max(0)])
        subsets = {
            "pose": abs(roll) >= LARGE_ROLL_DEG or abs(math.sin(math.radians(shape.yaw))) >= 0.9,
            "back": math.cos(math.radians(shape.yaw)) < 0,
            "illumination": look["light"] >= STRONG_LIGHT,
            "occlusion": bool(by_occluder.mean() >= OCCLUDED_FRACTION),
            "blur": look["blur"] >= BLUR_SIGMA,
        }
        params = {"yaw": shape.yaw, "roll": roll, **look}
        normalizer = MPII_HEAD_SCALE * float(np.hypot(*(head_box[2:] - head_box[:2])))
        return Scene(image, keypoints, by_occluder | ~attached, normalizer, subsets, params, head_box)


@dataclass
class FigurePlacement:
    """A figure before it is painted: its pose, in-plane rotation, joints (16, 2) in pixels,
    pixels per torso length, and the size its occluders scale with."""

    shape: BodyShape
    roll: float
    joints: np.ndarray
    scale: float
    size_px: float
