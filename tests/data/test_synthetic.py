"""The embedded benchmark: sample contract, determinism, exact geometry, symmetry, subsets."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from h3r.data.layouts import IBUG68, MPII16
from h3r.data.layouts import MPII_HEAD_SCALE
from h3r.data.synthetic import HARD, SPLITS, Nuisance, SyntheticFaces, SyntheticPose
from h3r.data.synthetic.canvas import Canvas, ellipse, place, spline, transform
from h3r.data.synthetic.faces import face_model, sample_face_shape
from h3r.data.synthetic.pose import HEAD_TOP, NECK, body_model, sample_body_shape
from h3r.geometry import flip_keypoints, in_frame

DATASETS = [SyntheticFaces, SyntheticPose]


# no large poses, expressions, occluders, strong blur or light, noise
BARE = Nuisance(p_large_pose=0.0, p_expression=0.0, p_occluder=0.0, p_blur=0.0, p_light=0.0, noise_max=0.0)


@pytest.mark.parametrize("cls", DATASETS)
def test_sample_contract(cls):
    ds = cls("train", length=5, input_size=(96, 80), seed=3)
    assert len(ds) == 5 and ds.input_size == (96, 80) and ds.split == "train" and ds.seed == 3
    assert ds.name in ("synthetic_faces", "synthetic_pose")
    k = ds.layout.num_keypoints
    s = ds[2]
    assert s["image"].dtype == torch.float32 and s["image"].shape == (3, 80, 96)
    assert s["keypoints"].dtype == torch.float32 and s["keypoints"].shape == (k, 2)
    assert torch.equal(s["keypoints"], s["keypoints_orig"])
    assert torch.equal(s["visible"], torch.ones(k))
    assert s["affine"].dtype == torch.float64 and torch.equal(s["affine"], torch.eye(2, 3, dtype=torch.float64))
    assert s["normalizer"].dtype == torch.float32 and s["normalizer"].ndim == 0 and s["normalizer"] > 0
    assert s["index"] == 2
    assert s["occluded"].dtype == torch.float32 and s["occluded"].shape == (k,)
    assert set(s["occluded"].unique().tolist()) <= {0.0, 1.0}
    assert set(s["subsets"]) == set(ds.subset_names)
    assert all(v.dtype == torch.bool and v.ndim == 0 for v in s["subsets"].values())
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 80, 96) and batch["subsets"]["blur"].shape == (2,)


def test_face_normalizer_is_inter_ocular():
    ds = SyntheticFaces("test", length=4, input_size=128)
    for i in range(4):
        s = ds[i]
        i0, i1 = IBUG68.normalizer_index
        distance = (s["keypoints"][i0] - s["keypoints"][i1]).norm().item()
        assert s["normalizer"].item() == pytest.approx(distance, rel=1e-5)


def test_pose_head_box_and_normalizer():
    ds = SyntheticPose("test", length=6, input_size=128)
    for i in range(6):
        s = ds[i]
        x1, y1, x2, y2 = s["head_box"].tolist()
        assert x1 < x2 and y1 < y2
        for joint in (NECK, HEAD_TOP):  # both lie on the head ellipse
            x, y = s["keypoints"][joint].tolist()
            assert x1 - 0.05 <= x <= x2 + 0.05 and y1 - 0.05 <= y <= y2 + 0.05
        assert s["normalizer"].item() == pytest.approx(MPII_HEAD_SCALE * math.hypot(x2 - x1, y2 - y1), rel=1e-5)


@pytest.mark.parametrize("cls", DATASETS)
def test_deterministic_by_seed_split_index(cls):
    a, b = cls("train", 10, 64, seed=1), cls("train", 10, 64, seed=1)
    s0, s1 = a[4], b[4]
    assert torch.equal(s0["image"], s1["image"]) and torch.equal(s0["keypoints"], s1["keypoints"])
    assert torch.equal(a[4]["image"], s0["image"])  # and again from the same object
    assert not torch.equal(a[5]["keypoints"], s0["keypoints"])
    assert not torch.equal(cls("train", 10, 64, seed=2)[4]["keypoints"], s0["keypoints"])
    assert torch.equal(a[-6]["image"], s0["image"])
    with pytest.raises(IndexError):
        a[10]


@pytest.mark.parametrize("cls", DATASETS)
def test_workers_are_irrelevant(cls):
    ds = cls("test", 6, 64)
    direct = torch.utils.data.default_collate([ds[i] for i in range(6)])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    batches = list(loader)
    assert torch.equal(torch.cat([b["image"] for b in batches]), direct["image"])
    assert torch.equal(torch.cat([b["keypoints"] for b in batches]), direct["keypoints"])


@pytest.mark.parametrize("cls", DATASETS)
def test_splits_draw_from_disjoint_streams(cls):
    assert len(set(SPLITS.values())) == len(SPLITS)
    splits = {split: cls(split, 8, 64) for split in SPLITS}
    for i in range(8):
        points = {split: ds[i]["keypoints"] for split, ds in splits.items()}
        assert not torch.equal(points["train"], points["test"])
        assert not torch.equal(points["test"], points["test_hard"])
        assert not torch.equal(points["train"], points["test_hard"])


@pytest.mark.parametrize("cls", DATASETS)
@pytest.mark.parametrize("split", ["train", "test_hard"])
def test_keypoints_inside_the_frame(cls, split):
    ds = cls(split, 40, (80, 64))
    for i in range(len(ds)):
        xy = torch.from_numpy(ds.scene(i).keypoints)
        assert in_frame(xy, ds.input_size).all()
        assert (xy >= 0).all() and (xy[:, 0] <= 79).all() and (xy[:, 1] <= 63).all()


@pytest.mark.parametrize("center", [(10.0, 12.0), (10.3, 12.7), (15.5, 9.25), (8.81, 13.13)])
def test_rendered_dot_centroid_is_its_position(center):
    # The pixel convention of the renderer: a disc drawn at a sub-pixel position has its
    # intensity centroid there (pixel centres at integers, as h3r.geometry).
    canvas = Canvas((24, 24))
    canvas.fill(ellipse(center, (1.5, 1.5), n=96), (255, 255, 255))
    mass = canvas.render(np.zeros((24, 24, 3), np.uint8))[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:24, :24]
    centroid = np.array([(mass * xs).sum(), (mass * ys).sum()]) / mass.sum()
    assert np.abs(centroid - center).max() < 0.02
    assert mass.sum() / 255 == pytest.approx(math.pi * 1.5**2, rel=0.02)  # exact area coverage


@pytest.mark.parametrize("edge", [4.0, 4.3, 4.5, 4.77])
def test_rendered_edges_are_exact_in_both_axes(edge):
    # A square whose top and left edges sit at a sub-pixel position: coverage is exact area.
    canvas = Canvas((20, 20))
    canvas.fill(np.array([[edge, edge], [15.5, edge], [15.5, 15.5], [edge, 15.5]]), (255, 255, 255))
    cover = canvas.render(np.zeros((20, 20, 3), np.uint8))[..., 0] / 255.0
    assert cover[:, 10].sum() == pytest.approx(15.5 - edge, abs=0.01)  # column through the square
    assert cover[10, :].sum() == pytest.approx(15.5 - edge, abs=0.01)  # row through the square


def test_canvas_unions_and_strokes():
    square = np.array([[2.0, 2.0], [12.0, 2.0], [12.0, 12.0], [2.0, 12.0]])
    canvas = Canvas((30, 30))
    canvas.fill([square, (square + 5)[::-1]], (255, 255, 255))  # opposite turns: still a union
    canvas.stroke(np.array([[20.0, 4.0], [20.0, 26.0]]), 3.0, (255, 255, 255))
    cover = canvas.render(np.zeros((30, 30, 3), np.uint8))[..., 0] / 255.0
    assert cover[10, 10] == 1.0  # the overlap is filled once, not cancelled
    assert cover[:, :19].sum() == pytest.approx(2 * 100 - 25, abs=0.5)  # (Agg sums coverage where edges cross)
    assert cover[15, 18:24].sum() == pytest.approx(3.0, abs=0.01)  # x in [18.5, 21.5]


def test_canvas_covering_reports_the_topmost_label():
    canvas = Canvas((40, 40))
    canvas.fill(ellipse((20, 20), (10, 10)), (0, 0, 255), label=1)
    canvas.fill(np.array([[15.0, 15.0], [25.0, 15.0], [25.0, 25.0], [15.0, 25.0]]), (255, 0, 0), label=2)
    canvas.fill(ellipse((35, 35), (2, 2)), (0, 255, 0))  # unlabelled
    labels = canvas.covering(np.array([[20.0, 20.0], [20.0, 12.0], [2.0, 2.0], [35.0, 35.0]]))
    assert labels.tolist() == [2, 1, 0, 0]


def test_spline_passes_through_its_points():
    points = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 2.5], [4.0, 0.0]])
    curve = spline(points, samples=8)
    assert len(curve) == 3 * 8 + 1
    np.testing.assert_allclose(curve[::8], points, atol=1e-12)
    closed = spline(points, samples=5, closed=True)
    np.testing.assert_allclose(closed[::5], points, atol=1e-12)


def test_place_keeps_points_inside_with_margin():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(30, 2))
    for roll in (0.0, 37.0, -120.0):
        m = place(points, (50, 30), roll, 0.9, rng, margin=2.0)
        xy = transform(points, m)
        assert xy.min() >= 2.0 - 1e-9 and xy[:, 0].max() <= 47.0 + 1e-9 and xy[:, 1].max() <= 27.0 + 1e-9
        assert m[0, 0] == pytest.approx(m[1, 1]) and m[0, 1] == pytest.approx(-m[1, 0])  # similarity


def test_face_model_is_mirror_symmetric():
    # Mirroring a face's landmarks and re-ordering them by flip_index gives the mirrored face.
    rng = np.random.default_rng(0)
    for _ in range(20):
        shape, _ = sample_face_shape(rng, HARD)
        mirrored = flip_keypoints(torch.from_numpy(face_model(shape)[0]), 1.0, IBUG68.flip_index)
        np.testing.assert_allclose(face_model(shape.mirrored())[0], mirrored.numpy(), atol=1e-9)


def test_body_model_is_mirror_symmetric():
    rng = np.random.default_rng(0)
    for _ in range(20):
        shape, _ = sample_body_shape(rng, HARD)
        mirrored = flip_keypoints(torch.from_numpy(body_model(shape)), 1.0, MPII16.flip_index)
        np.testing.assert_allclose(body_model(shape.mirrored()), mirrored.numpy(), atol=1e-9)


def test_mirrored_face_sample_is_plausible():
    # A mirrored image with flipped keypoints is again a face: the subject's right eye, brow and
    # mouth corner (image left) stay on the image left, the jaw runs from left to right.
    ds = SyntheticFaces("test", 30, 64)
    for i in range(len(ds)):
        scene = ds.scene(i)
        keypoints = torch.from_numpy(scene.keypoints)
        kp = flip_keypoints(keypoints, ds.input_size[0], ds.layout.flip_index)
        for points in (keypoints, kp):
            if abs(scene.params["roll"]) < 60:
                assert points[36:42, 0].mean() < points[42:48, 0].mean()
                assert points[17:22, 0].mean() < points[22:27, 0].mean()
                assert points[48, 0] < points[54, 0] and points[0, 0] < points[16, 0]


def test_mirrored_pose_sample_keeps_the_side_rule():
    # Facing the camera, the person's right shoulder is on the image left; seen from behind, on
    # the right. The rule holds for mirrored samples too (the figure still faces the same way).
    ds = SyntheticPose("test", 40, 96)
    checked = 0
    for i in range(len(ds)):
        scene = ds.scene(i)
        if abs(scene.params["roll"]) > 30 or abs(math.cos(math.radians(scene.params["yaw"]))) < 0.3:
            continue
        sign = 1 if scene.subsets["back"] else -1
        kp = torch.from_numpy(scene.keypoints)
        for points in (kp, flip_keypoints(kp, ds.input_size[0], ds.layout.flip_index)):
            across = (points[12, 0] - points[13, 0]).item()  # right shoulder minus left shoulder
            assert np.sign(across) == sign
        checked += 1
    assert checked >= 10


def test_occlusion_flags():
    bare = SyntheticFaces("test", 10, 96, nuisance=BARE)
    assert all(bare.scene(i).occluded.sum() == 0 for i in range(10))
    always = Nuisance(p_occluder=1.0, max_occluders=3)
    ds = SyntheticFaces("test", 30, 96, nuisance=always)
    scenes = [ds.scene(i) for i in range(30)]
    assert sum(s.occluded.any() for s in scenes) >= 15
    for s in scenes:
        assert s.subsets["occlusion"] == (s.occluded.mean() >= 0.1)
    # bodies: a joint is occluded by occluders or by parts it is not attached to
    pose = SyntheticPose("test", 30, 96, nuisance=BARE)
    fractions = [pose.scene(i).occluded.mean() for i in range(30)]
    assert max(fractions) > 0 and np.mean(fractions) < 0.5


@pytest.mark.parametrize("cls", DATASETS)
def test_hard_split_is_harder(cls):
    flags = ("pose", "occlusion", "blur")
    rates = {}
    for split in ("test", "test_hard"):
        ds = cls(split, 50, 64)
        subsets = [ds.scene(i).subsets for i in range(len(ds))]
        rates[split] = [np.mean([s[f] for s in subsets]) for f in flags]
    assert all(h > n for h, n in zip(rates["test_hard"], rates["test"]))


@pytest.mark.parametrize("cls", DATASETS)
def test_the_render_cache_serves_exactly_the_rendered_samples(cls, tmp_path):
    """Training reads every epoch's samples from a cache rendered once; it must hold what rendering
    gives, epoch by epoch, and a change of epoch must not read another epoch's file."""
    plain, cached = cls("train", 6, 32, seed=3), cls("train", 6, 32, seed=3).enable_cache(tmp_path)
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        path = cached.ensure_cached()
        for i in range(len(plain)):
            a, b = plain[i], cached[i]
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["keypoints"], b["keypoints"])
            assert a["subsets"] == b["subsets"] and a["normalizer"] == b["normalizer"]
    assert len(list(tmp_path.glob("*.npz"))) == 2 and path.name.startswith(cls.name)
    assert not torch.equal(cls("train", 6, 32, seed=3)[0]["image"], plain[0]["image"])  # epoch 1 differs


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        SyntheticFaces("valid")
    with pytest.raises(ValueError, match="input_size"):
        SyntheticFaces(input_size=(128,))
    with pytest.raises(ValueError, match="seed"):
        SyntheticPose(seed=-1)


def test_the_validation_split_is_drawn_from_the_training_distribution_apart_from_train_and_test():
    val, train, test = (SyntheticFaces(split, 4, 32) for split in ("val", "train", "test"))
    assert val.nuisance == train.nuisance
    images = [d[0]["image"] for d in (val, train, test)]
    assert not torch.equal(images[0], images[1]) and not torch.equal(images[0], images[2])
