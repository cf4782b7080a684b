"""Real annotations through the loaders, crops and inverse maps: the 300W validation split shipped in
data/300w/, and the sample images of ../shared/data (skipped when absent)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from h3r.data.faces import Face300WCSV, HRNetCSV, COCOStyleFaces, face_normalizers
from h3r.data.layouts import AFLW19, COFW29, IBUG68, LAPA106, WFLW98
from h3r.data.pose import MPII, COCOKeypoints
from h3r.data.sample import denormalize_image
from h3r.data.transforms import Augment, crop_matrix, inverse
from h3r.geometry import apply_affine

FACES = {"wflw": WFLW98, "300w": IBUG68, "cofw": COFW29, "aflw": AFLW19, "lapa": LAPA106, "300wlp": IBUG68}
AUGMENT = Augment(rotation=30, scale=0.25, translate=0.1, flip=0.5)


def _samples(shared: Path, name: str) -> tuple[Path, Path]:
    folder = shared / "samples" / name
    return folder / f"test_{name}.json", folder


def _similarity_residual(x: np.ndarray, y: np.ndarray) -> float:
    """RMS distance between x and y after the best rotation + scale + shift of y (no reflection)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    u, s, vt = np.linalg.svd(yc.T @ xc)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1, d]) @ vt
    scale = (s * [1, d]).sum() / (yc**2).sum()
    return float(np.sqrt(((scale * yc @ rotation - xc) ** 2).sum(1).mean()))


def test_300w_validation_csvs(repo_data, tmp_path):
    (tmp_path / "300w").symlink_to(repo_data / "300w")
    sizes = {}
    for split in ("valid", "valid_common", "valid_challenge"):
        ds = Face300WCSV(split, data_root=tmp_path, on_missing_image="skip")  # the images are not shipped
        sizes[split] = ds.summary()["indexed"]
        assert ds.summary()["skipped_missing_image"] == sizes[split] and len(ds) == 0
    assert sizes == {"valid": 689, "valid_common": 554, "valid_challenge": 135}
    csv = HRNetCSV(csv_file=repo_data / "300w" / "face_landmarks_300w_valid.csv", image_root=tmp_path,
                   layout=IBUG68, on_missing_image="skip")
    ann = csv.load()  # the parsed annotations, before the (absent) images are checked
    assert len(ann) == 689 and np.isfinite(ann.keypoints).all()
    inter_ocular = face_normalizers(ann.keypoints, IBUG68, "inter_ocular")
    side = ann.boxes[:, 2] - ann.boxes[:, 0] + 1
    assert (inter_ocular > 10).all() and (inter_ocular / side > 0.3).all() and (inter_ocular / side < 0.9).all()
    rng = np.random.default_rng(0)
    matrices = torch.stack([crop_matrix(b, (256, 256), rotation=rng.uniform(-30, 30), scale=rng.uniform(0.75, 1.25),
                                        flip=bool(rng.random() < 0.5)) for b in ann.boxes])
    points = torch.from_numpy(ann.keypoints)
    crop = apply_affine(points, matrices).float()
    np.testing.assert_allclose(inverse(crop, matrices).numpy(), ann.keypoints, atol=1e-4)
    # with the unaugmented P2 crop every landmark lies inside the 1.25-padded box
    plain = apply_affine(points, torch.stack([crop_matrix(b, (256, 256)) for b in ann.boxes]))
    assert ((plain > -0.5) & (plain < 255.5)).float().mean() > 0.99


@pytest.mark.parametrize("name", list(FACES))
def test_real_faces_through_crop_and_inverse(shared_data, name):
    ann_file, images = _samples(shared_data, name)
    layout = FACES[name]
    n = len(json.loads(ann_file.read_text())["annotations"])
    for kwargs in ({}, {"augment": AUGMENT, "seed": 0}, {"box": "P2"}):
        ds = COCOStyleFaces(ann_file, images, layout, input_size=128, **kwargs)
        assert len(ds) == n and ds.summary()["skipped_missing_image"] == 0
        for i in range(n):
            s = ds[i]
            np.testing.assert_allclose(inverse(s["keypoints"], s["affine"]).numpy(), s["keypoints_orig"].numpy(), atol=1e-4)
            assert denormalize_image(s["image"]).std() > 10  # real pixels, not an empty crop
            box = s["box"].numpy()
            diagonal = np.hypot(box[2] - box[0], box[3] - box[1])
            assert 0.1 * diagonal < s["normalizer"].item() < 1.5 * diagonal


@pytest.mark.parametrize("name", list(FACES))
def test_flip_index_mirrors_real_faces(shared_data, name):
    """A mirrored face, re-indexed with flip_index, is again the same face up to a similarity;
    without the re-indexing (left and right swapped) it is not."""
    layout = FACES[name]
    ds = COCOStyleFaces(*_samples(shared_data, name), layout)
    for i in range(len(ds)):
        points = ds[i]["keypoints_orig"].numpy().astype(np.float64)
        mirrored = points * [-1, 1]
        good = _similarity_residual(points, mirrored[list(layout.flip_index)])
        bad = _similarity_residual(points, mirrored)
        norm = ds[i]["normalizer"].item()
        assert good < 0.35 * norm and good < 0.5 * bad


def test_real_mpii_sample(shared_data, tmp_path):
    ann_file, images = _samples(shared_data, "mpii")
    (tmp_path / "mpii" / "annot").mkdir(parents=True)
    (tmp_path / "mpii" / "annot" / "valid.json").symlink_to(ann_file)
    (tmp_path / "mpii" / "images").symlink_to(images)
    with pytest.warns(UserWarning, match="gt_valid.mat"):
        plain = MPII("valid", data_root=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        augmented = MPII("valid", data_root=tmp_path, augment=AUGMENT, seed=1)
    entries = json.loads(ann_file.read_text())
    assert len(plain) == len(entries) and plain.summary()["no_head_box"] == len(entries)
    for i, entry in enumerate(entries):
        s = augmented[i]
        np.testing.assert_allclose(inverse(s["keypoints"], s["affine"]).numpy(), s["keypoints_orig"].numpy(), atol=1e-4)
        joints = np.asarray(entry["joints"], dtype=np.float64) - 1  # HRNet: MATLAB's 1-based pixels
        visible = np.asarray(entry["joints_vis"]) > 0
        s = plain[i]
        np.testing.assert_array_equal(s["visible"].numpy() > 0, visible)
        np.testing.assert_allclose(s["keypoints_orig"].numpy()[visible], joints[visible], atol=1e-3)
        assert (s["box"][2] - s["box"][0] + 1).item() == pytest.approx(200 * entry["scale"], rel=1e-6)


def test_real_coco_sample(shared_data, tmp_path):
    ann_file, images = _samples(shared_data, "coco")
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    (tmp_path / "coco" / "annotations" / "person_keypoints_val2017.json").symlink_to(ann_file)
    (tmp_path / "coco" / "images").mkdir()
    (tmp_path / "coco" / "images" / "val2017").symlink_to(images)
    ds = COCOKeypoints("val", data_root=tmp_path)
    data = json.loads(ann_file.read_text())
    usable = [a for a in data["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]
    summary = ds.summary()
    assert summary["samples"] + summary["empty_box"] == len(usable)
    assert summary["no_keypoints"] == len(data["annotations"]) - len(usable) - summary["crowd"]
    by_id = {a["id"]: a for a in usable}
    for i in range(len(ds)):
        s = ds[i]
        np.testing.assert_allclose(inverse(s["keypoints"], s["affine"]).numpy(), s["keypoints_orig"].numpy(), atol=1e-4)
        truth = np.asarray(by_id[s["ann_id"].item()]["keypoints"], dtype=np.float64).reshape(17, 3)
        np.testing.assert_array_equal(s["visible"].numpy() > 0, truth[:, 2] > 0)
        np.testing.assert_allclose(s["keypoints_orig"].numpy()[truth[:, 2] > 0], truth[truth[:, 2] > 0, :2], atol=1e-3)
        assert s["area"].item() == pytest.approx(by_id[s["ann_id"].item()]["area"])
