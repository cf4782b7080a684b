"""Every loader on tiny datasets written in its official format: truth, protocols, crops, errors."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from fixtures import WRITERS, red_peak, write_cofw, write_mpii
from fixtures.faces import mat73_header
from torch.utils.data import default_collate

from h3r.data.annotated import DATA_ROOT_ENV, AnnotationError, DatasetNotFoundError, resolve_data_root
from h3r.data.faces import COCOStyleFaces, FaceDataset, HRNetCSV
from h3r.data.layouts import AFLW19, COCO17, IBUG68, MPII16, WFLW98, describe_normalizer, describe_pupils
from h3r.data.registry import (DATASETS, LAYOUT_DOCS, available_datasets, build_dataset, dataset_status,
                               layouts_markdown)
from h3r.data.sample import denormalize_image
from h3r.data.transforms import Augment, inverse, official_crop
from h3r.geometry import flip_keypoints
from h3r.protocols import PROTOCOLS

CASES = [("wflw", "train"), ("wflw", "test"), ("300w", "train"), ("300w", "common"), ("300w", "challenging"),
         ("300w", "full"), ("300w", "test"), ("300w_csv", "train"), ("300w_csv", "valid"), ("cofw", "train"),
         ("cofw", "test"), ("aflw", "train"), ("aflw", "test"), ("aflw", "test_frontal"), ("lapa", "train"),
         ("lapa", "test"), ("300w_lp", "train"), ("aflw2000", "test"), ("mpii", "valid"), ("coco", "val")]
FLIP = Augment(rotation=30, scale=0.2, translate=0.1, flip=1.0, brightness=0, contrast=0, saturation=0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, {name: write(root) for name, write in WRITERS.items()}


def _build(root, name, split, **kwargs):
    kwargs.setdefault("input_size", 64)
    return build_dataset(name, split, data_root=root, **kwargs)


def _copy(data, tmp_path, folder) -> Path:
    shutil.copytree(data[0] / folder, tmp_path / folder)
    return tmp_path


def _tight(points):
    return np.concatenate([np.nanmin(points, -2), np.nanmax(points, -2)], -1)


# --- every loader returns what was written ------------------------------------------------------

@pytest.mark.parametrize("name,split", CASES)
def test_loader_reads_the_written_truth(data, name, split):
    root, truth = data
    want = truth[name][split]
    ds = _build(root, name, split)
    assert len(ds) == len(want.keypoints) and ds.summary()["samples"] == len(want.keypoints)
    samples = [ds[i] for i in range(len(ds))]
    got = np.stack([s["keypoints_orig"].numpy() for s in samples])
    np.testing.assert_allclose(got, want.keypoints, atol=1e-4)  # NaN where not annotated, on both sides
    np.testing.assert_array_equal(np.stack([s["visible"].numpy() for s in samples]), np.isfinite(want.keypoints).all(-1))
    k = ds.layout.num_keypoints
    s = samples[0]
    assert s["image"].shape == (3, 64, 64) and s["image"].dtype == torch.float32
    assert s["keypoints"].shape == (k, 2) and s["keypoints"].dtype == torch.float32
    assert s["affine"].shape == (2, 3) and s["affine"].dtype == torch.float64
    assert s["normalizer"].shape == () and s["index"] == 0
    for sample in samples:
        np.testing.assert_allclose(inverse(sample["keypoints"], sample["affine"]).numpy(),
                                   sample["keypoints_orig"].numpy(), atol=1e-4)
    if want.images:
        assert [s["image_path"] for s in samples] == want.images
    batch = default_collate(samples)
    assert batch["keypoints"].shape == (len(ds), k, 2) and len(batch["image_path"]) == len(ds)


@pytest.mark.parametrize("name,split", [c for c in CASES if c[0] not in ("mpii", "coco")])
def test_face_boxes_p1_and_p2(data, name, split):
    root, truth = data
    want = truth[name][split]
    p1 = _build(root, name, split, box="P1")
    np.testing.assert_allclose(np.stack([s["box"] for s in p1]), _tight(want.keypoints), atol=1e-4)
    if want.boxes is not None:
        p2 = _build(root, name, split, box="P2")
        np.testing.assert_allclose(np.stack([s["box"] for s in p2]), want.boxes, atol=1e-4)


@pytest.mark.parametrize("name,split", CASES)
def test_flipped_samples_round_trip_and_flip_back(data, name, split):
    root, truth = data
    flipped = _build(root, name, split, augment=FLIP, seed=3)
    plain = _build(root, name, split, augment=Augment(**{**FLIP.__dict__, "flip": 0.0}), seed=3)
    order = list(flipped.layout.flip_index)
    want = truth[name][split].keypoints
    for i in range(len(flipped)):
        f, p = flipped[i], plain[i]
        np.testing.assert_allclose(inverse(f["keypoints"], f["affine"]).numpy(), f["keypoints_orig"].numpy(), atol=1e-4)
        np.testing.assert_allclose(f["keypoints_orig"].numpy(), want[i][order], atol=1e-4)
        torch.testing.assert_close(f["visible"], p["visible"][order])
        back = flip_keypoints(f["keypoints"], 64, flipped.layout.flip_index)
        torch.testing.assert_close(back, p["keypoints"], atol=1e-4, rtol=0, equal_nan=True)


@pytest.mark.parametrize("name,split,index", [("wflw", "test", 1), ("300w_lp", "train", 2), ("cofw", "test", 0),
                                              ("mpii", "valid", 1), ("coco", "val", 1)])
def test_crop_pixels_agree_with_the_keypoints(data, name, split, index):
    root, truth = data
    ds = _build(root, name, split, input_size=96, augment=Augment(rotation=25, scale=0.1, translate=0.05, flip=0.5,
                                                                 brightness=0, contrast=0, saturation=0), seed=7)
    marker = truth[name][split].keypoints[index][0]
    for epoch in range(3):
        ds.set_epoch(epoch)
        s = ds[index]
        j = int(np.nanargmin(np.linalg.norm(s["keypoints_orig"].numpy() - marker, axis=-1)))
        np.testing.assert_allclose(red_peak(denormalize_image(s["image"])), s["keypoints"][j].numpy(), atol=0.3)


def test_samples_are_seeded_per_epoch(data):
    ds = _build(data[0], "wflw", "train", augment=Augment(), seed=11)
    a, b = ds[1], ds[1]
    torch.testing.assert_close(a["image"], b["image"])
    torch.testing.assert_close(a["keypoints"], b["keypoints"])
    ds.set_epoch(1)
    assert not torch.allclose(ds[1]["keypoints"], a["keypoints"])


# --- protocols -----------------------------------------------------------------------------------

def _norm(points, i, j):
    return np.linalg.norm(points[:, i] - points[:, j], axis=-1)


def _normalizers(ds):
    return np.array([ds[i]["normalizer"].item() for i in range(len(ds))])


def test_face_datasets_default_to_their_protocols_normalizer():
    benchmarks = [(name, cls) for name, cls in DATASETS.items() if issubclass(cls, FaceDataset) and name in PROTOCOLS]
    assert len(benchmarks) == 7
    for name, cls in benchmarks:
        assert cls.default_normalizer == PROTOCOLS[name].normalizer, name


def test_wflw_protocol(data):
    root, truth = data
    want = truth["wflw"]["test"]
    ds = _build(root, "wflw", "test")
    np.testing.assert_allclose(_normalizers(ds), _norm(want.keypoints, 60, 72), rtol=1e-5)
    pupils = _build(root, "wflw", "test", normalizer="inter_pupil")
    np.testing.assert_allclose(_normalizers(pupils), _norm(want.keypoints, 96, 97), rtol=1e-5)
    flags = np.stack([[ds[i]["subsets"][a].item() for a in ds.ATTRIBUTES] for i in range(len(ds))])
    np.testing.assert_array_equal(flags, want.extra["attributes"] > 0)
    assert ds.summary()["subset_blur"] == int(want.extra["attributes"][:, 5].sum())


def test_300w_protocol(data):
    root, truth = data
    sizes = {split: len(_build(root, "300w", split)) for split in ("train", "common", "challenging", "full", "test")}
    assert sizes == {"train": 4, "common": 3, "challenging": 2, "full": 5, "test": 2}
    full = _build(root, "300w", "full")
    want = truth["300w"]["full"]
    np.testing.assert_allclose(_normalizers(full), _norm(want.keypoints, 36, 45), rtol=1e-5)
    challenging = [full[i]["subsets"]["challenging"].item() for i in range(len(full))]
    assert challenging == list(want.extra["folder"] == "ibug")
    assert full.summary()["subset_common"] == 3
    # the official script's P2 box is the tight box of the un-shifted .pts values: P1 + 1
    p1, p2 = _build(root, "300w", "full", box="P1"), _build(root, "300w", "full", box="P2")
    torch.testing.assert_close(p2[0]["box"], p1[0]["box"] + 1)
    assert _build(root, "300w", "test").summary()["subset_indoor"] == 1


def test_hrnet_csv_protocol(data, tmp_path):
    root, truth = data
    assert len(_build(root, "300w_csv", "valid")) == len(_build(root, "300w_csv", "valid_common")) + 1
    csv = root / "300w" / "face_landmarks_300w_valid_common.csv"
    generic = HRNetCSV(csv_file=csv, image_root=root / "300w" / "images", layout=IBUG68, input_size=64)
    shifted = HRNetCSV(csv_file=csv, image_root=root / "300w" / "images", layout=IBUG68, input_size=64, one_based=True)
    want = truth["300w_csv"]["valid_common"]
    torch.testing.assert_close(shifted[0]["keypoints_orig"], generic[0]["keypoints_orig"] - 1)
    p2 = HRNetCSV(csv_file=csv, image_root=root / "300w" / "images", layout=IBUG68, input_size=64, box="P2")
    side = float(p2[0]["box"][2] - p2[0]["box"][0] + 1)
    assert side == pytest.approx(float(want.extra["rows"][0][1]) * 200)


def test_cofw_protocol(data):
    root, truth = data
    want = truth["cofw"]["test"]
    ds = _build(root, "cofw", "test")
    np.testing.assert_allclose(_normalizers(ds), _norm(want.keypoints, 8, 9), rtol=1e-5)
    pupils = _build(root, "cofw", "test", normalizer="inter_pupil")
    np.testing.assert_allclose(_normalizers(pupils), _norm(want.keypoints, 16, 17), rtol=1e-5)
    np.testing.assert_array_equal(np.stack([ds[i]["occluded"].numpy() for i in range(3)]), want.extra["occluded"])
    assert (ds[0]["visible"] == 1).all()
    grey = ds.read_image(2)
    assert grey.shape[2] == 3 and (grey[..., 0] == grey[..., 2]).all()
    np.testing.assert_array_equal(ds.read_image(0), want.extra["images"][0])


def test_cofw_hdf5(tmp_path):
    try:
        import h5py  # noqa: F401
    except ImportError:
        path = tmp_path / "cofw" / "COFW_test_color.mat"
        path.parent.mkdir(parents=True)
        path.write_bytes(mat73_header() + b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
        with pytest.raises(ImportError, match="v7.3.*pip install h5py"):
            build_dataset("cofw", "test", data_root=tmp_path)
        return
    truth = write_cofw(tmp_path, hdf5=True)["test"]
    ds = build_dataset("cofw", "test", data_root=tmp_path, input_size=64)
    np.testing.assert_allclose(np.stack([ds[i]["keypoints_orig"].numpy() for i in range(3)]), truth.keypoints, atol=1e-4)
    np.testing.assert_array_equal(ds.read_image(0), truth.extra["images"][0])


def test_aflw_protocol(data):
    root, truth = data
    want = truth["aflw"]["test"]
    ds = _build(root, "aflw", "test")
    np.testing.assert_allclose(_normalizers(ds), want.extra["box_size"], rtol=1e-6)
    assert [ds[i]["subsets"]["frontal"].item() for i in range(3)] == list(want.extra["frontal"])
    assert len(_build(root, "aflw", "test_frontal")) == 2


def test_lapa_protocol(data, tmp_path):
    root, truth = data
    want = truth["lapa"]["test"]
    np.testing.assert_allclose(_normalizers(_build(root, "lapa", "test")), _norm(want.keypoints, 66, 79), rtol=1e-5)
    pupils = _build(root, "lapa", "test", normalizer="inter_pupil")
    np.testing.assert_allclose(_normalizers(pupils), _norm(want.keypoints, 104, 105), rtol=1e-5)
    with pytest.raises(DatasetNotFoundError, match="bbox"):
        _build(root, "lapa", "train", box="P2")


def test_300w_lp_and_aflw2000_protocol(data):
    root, truth = data
    lp = truth["300w_lp"]["train"]
    assert len(_build(root, "300w_lp", "train", include_flipped=False)) == int((~lp.extra["flipped"]).sum())
    box = _tight(truth["aflw2000"]["test"].keypoints)
    ds = _build(root, "aflw2000", "test")
    np.testing.assert_allclose(_normalizers(ds), np.sqrt((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])), rtol=1e-5)
    bins = {name: [ds[i]["subsets"][name].item() for i in range(len(ds))] for name, *_ in ds.YAW_BINS}
    yaw = truth["aflw2000"]["test"].extra["yaw"]  # 10, 45, 75, 95, 25 degrees
    assert bins == {"yaw_0_30": list(yaw <= 30), "yaw_30_60": list((yaw > 30) & (yaw <= 60)), "yaw_60_90": list(yaw > 60)}
    assert ds.summary()["yaw_beyond_90"] == 1


def test_mpii_protocol(data, tmp_path):
    root, truth = data
    want = truth["mpii"]["valid"]
    ds = _build(root, "mpii", "valid")
    head = want.extra["head_box"]
    np.testing.assert_allclose(_normalizers(ds), 0.6 * np.linalg.norm(head[:, 2:] - head[:, :2], axis=-1), rtol=1e-5)
    np.testing.assert_allclose(ds[1]["head_box"].numpy(), head[1], atol=1e-4)
    np.testing.assert_allclose(np.stack([s["box"] for s in ds]), want.boxes, atol=1e-4)
    assert ds.summary()["missing_points"] == 1 and ds.summary()["visibility_differs_from_gt"] == 0
    write_mpii(tmp_path, gt_mat=False)
    with pytest.warns(UserWarning, match="gt_valid.mat"):
        bare = build_dataset("mpii", "valid", data_root=tmp_path)
    assert np.isnan(bare[0]["normalizer"].item()) and bare.summary()["no_head_box"] == 3


def test_coco_protocol(data):
    root, truth = data
    want = truth["coco"]["val"]
    ds = build_dataset("coco", "val", data_root=root)
    assert ds.input_size == (192, 256) and ds[0]["image"].shape == (3, 256, 192)
    summary = ds.summary()
    assert (summary["crowd"], summary["no_keypoints"], summary["empty_box"], summary["samples"]) == (1, 1, 1, 3)
    s = [ds[i] for i in range(3)]
    assert [x["ann_id"].item() for x in s] == list(want.extra["ann_id"])
    assert [x["image_id"].item() for x in s] == list(want.extra["image_id"])
    np.testing.assert_allclose([x["normalizer"].item() for x in s], np.sqrt(want.extra["area"]), rtol=1e-6)
    np.testing.assert_allclose(np.stack([x["box"] for x in s]), want.boxes, atol=1e-4)
    assert s[2]["box"][0] == 0  # clipped at the image edge, as HRNet cleans boxes
    # the crop is the box padded by 1.25 to the input's aspect ratio
    x1, y1, x2, y2 = want.boxes[0]
    side = 1.25 * max(x2 - x1 + 1, (y2 - y1 + 1) * 192 / 256)
    assert s[0]["affine"][0, 0].item() == pytest.approx(192 / side)


def test_official_crop_in_a_dataset(data):
    root, _ = data
    ds = _build(root, "wflw", "test", protocol="official")
    s = ds[0]
    _, mapping = official_crop(s["box"].double().tolist(), (64, 64))
    torch.testing.assert_close(s["affine"], mapping, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="official"):
        _build(root, "wflw", "test", protocol="official", augment=Augment())


def test_unannotated_points_are_invisible_and_counted(data, tmp_path):
    root = _copy(data, tmp_path, "300w")
    csv = root / "300w" / "face_landmarks_300w_valid_common.csv"
    lines = csv.read_text().splitlines()
    fields = lines[1].split(",")
    fields[4], fields[5] = "nan", "nan"  # keypoint 0
    csv.write_text("\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n")
    ds = _build(root, "300w_csv", "valid_common")
    s = ds[0]
    assert s["visible"][0] == 0 and s["visible"][1:].all() and torch.isnan(s["keypoints_orig"][0]).all()
    assert ds.summary()["missing_points"] == 1 and ds.summary()["samples_with_missing_points"] == 1
    assert np.isfinite(s["box"].numpy()).all()


# --- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(DATASETS))
def test_missing_dataset_says_what_where_and_how(tmp_path, name):
    split = DATASETS[name].splits[0]
    with pytest.raises(DatasetNotFoundError) as error:
        build_dataset(name, split, data_root=tmp_path / "nowhere")
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    assert str(tmp_path / "nowhere") in message and "http" in message and "Looked for" in message


def test_missing_image_raise_or_skip(data, tmp_path):
    root = _copy(data, tmp_path, "wflw")
    image = Path(data[1]["wflw"]["test"].images[2].replace(str(data[0]), str(root)))
    image.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{image.name}.*list_98pt_rect_attr_test.txt:3"):
        _build(root, "wflw", "test")
    ds = _build(root, "wflw", "test", on_missing_image="skip")
    assert len(ds) == 3 and ds.summary()["skipped_missing_image"] == 1 and ds.summary()["indexed"] == 4
    assert image.name not in [ds[i]["image_path"] for i in range(3)]


def test_unreadable_image_names_the_image_and_its_annotation(data, tmp_path):
    root = _copy(data, tmp_path, "wflw")
    image = Path(data[1]["wflw"]["test"].images[1].replace(str(data[0]), str(root)))
    image.write_bytes(b"not an image")
    ds = _build(root, "wflw", "test")
    with pytest.raises(OSError, match=rf"{image.name} could not be decoded.*list_98pt_rect_attr_test.txt:2"):
        ds[1]


def test_coco_style_faces(data, tmp_path):
    root, truth = data
    want = truth["wflw"]["test"]
    x1, y1, x2, y2 = want.boxes.T
    triples = np.concatenate([want.keypoints, np.full((4, 98, 1), 2.0)], axis=-1)
    triples[0, 5, 2] = 0
    ann = {"images": [{"id": i, "file_name": Path(p).name} for i, p in enumerate(want.images)],
           "annotations": [{"image_id": i, "keypoints": triples[i].ravel().tolist(),
                            "bbox": [x1[i], y1[i], x2[i] - x1[i] + 1, y2[i] - y1[i] + 1]} for i in range(4)]}
    path = tmp_path / "faces.json"
    path.write_text(json.dumps(ann))
    ds = COCOStyleFaces(path, Path(want.images[0]).parent, WFLW98, input_size=64, box="P2")
    np.testing.assert_allclose(np.stack([s["box"] for s in ds]), want.boxes, atol=1e-4)
    np.testing.assert_allclose(_normalizers(ds), _norm(want.keypoints, 60, 72), rtol=1e-5)
    assert ds[0]["visible"][5] == 0 and ds.summary()["missing_points"] == 1
    ann["annotations"][2]["keypoints"] = ann["annotations"][2]["keypoints"][:-3]
    path.write_text(json.dumps(ann))
    with pytest.raises(AnnotationError, match=r"faces.json \(annotations\[2\]\): expected keypoints .* of shape \(294,\)"):
        COCOStyleFaces(path, tmp_path, WFLW98)


def _edit(path: Path, fn):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")


def _replace_token(line, index, value, sep=None):
    tokens = line.split(sep)
    tokens[index] = value
    return (sep or " ").join(tokens)


def _remat(path, **changes):
    mat = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
    mat.update(changes)
    scipy.io.savemat(str(path), {k: v for k, v in mat.items() if v is not None})


def _json(path: Path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


WFLW_LIST = "wflw/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_test.txt"
PTS = "300w/images/ibug/image_0000.pts"
CSV_300W = "300w/face_landmarks_300w_valid_common.csv"
AFLW_CSV = "aflw/face_landmarks_aflw_test.csv"
LAPA_TXT = "lapa/test/landmarks/test_00000.txt"
MALFORMED = [
    ("wflw", "test", WFLW_LIST, lambda p: _edit(p, lambda ls: [ls[0], " ".join(ls[1].split()[57:]), *ls[2:]]),
     r"list_98pt_rect_attr_test.txt:2: expected 207 fields \(196 coordinates, 4 box, 6 attributes, 1 image path\), got 150"),
    ("wflw", "test", WFLW_LIST, lambda p: _edit(p, lambda ls: [_replace_token(ls[0], 5, "abc"), *ls[1:]]),
     r"list_98pt_rect_attr_test.txt:1: .*'abc' is not a number"),
    ("wflw", "test", WFLW_LIST, lambda p: _edit(p, lambda ls: [_replace_token(ls[0], 201, "2"), *ls[1:]]),
     r"list_98pt_rect_attr_test.txt:1.*attributes must be 0 or 1"),
    ("300w", "challenging", PTS, lambda p: _edit(p, lambda ls: [ls[0], "n_points:  67", *ls[2:]]),
     r"image_0000.pts:2: expected 68 points"),
    ("300w", "challenging", PTS, lambda p: _edit(p, lambda ls: ls[:-3]), r"image_0000.pts:\d+: expected 68 lines"),
    ("300w", "challenging", PTS, lambda p: _edit(p, lambda ls: [*ls[:4], "x 3.0", *ls[5:]]),
     r"image_0000.pts:5: point: 'x' is not a number"),
    ("300w", "challenging", PTS, lambda p: _edit(p, lambda ls: [*ls[:2], "[", *ls[3:]]), r"image_0000.pts:3: expected '\{'"),
    ("300w_csv", "valid_common", CSV_300W, lambda p: _edit(p, lambda ls: [ls[0].replace("center_w", "cx"), *ls[1:]]),
     r"valid_common.csv:1: expected the header"),
    ("300w_csv", "valid_common", CSV_300W, lambda p: _edit(p, lambda ls: [ls[0], ls[1].rsplit(",", 1)[0], *ls[2:]]),
     r"valid_common.csv:2: expected 140 fields, got 139"),
    ("300w_csv", "valid_common", CSV_300W, lambda p: _edit(p, lambda ls: [ls[0], ls[1], _replace_token(ls[2], 7, "oops", ",")]),
     r"valid_common.csv:3: numeric columns: 'oops' is not a number"),
    ("aflw", "test", AFLW_CSV, lambda p: _edit(p, lambda ls: [ls[0], ls[1], ls[2][: ls[2].rfind(",")], ls[3]]),
     r"aflw_test.csv:3: expected 43 fields, got 42"),
    ("aflw", "test", AFLW_CSV, lambda p: _edit(p, lambda ls: [",".join(ls[0].split(",")[:2] + ls[0].split(",")[3:])]
                                                + [",".join(r.split(",")[:2] + r.split(",")[3:]) for r in ls[1:]]),
     r"aflw_test.csv:1: normalizer='box_size' needs a box_size column"),
    ("cofw", "test", "cofw/COFW_test_color.mat", lambda p: _remat(p, phisT=None), r"variable 'phisT'.*missing"),
    ("cofw", "test", "cofw/COFW_test_color.mat", lambda p: _remat(p, phisT=np.zeros((3, 86))),
     r"variable 'phisT'.*expected shape \(3, 87\)"),
    ("lapa", "test", LAPA_TXT, lambda p: _edit(p, lambda ls: ["105", *ls[1:]]), r"test_00000.txt:1: expected the point count 106"),
    ("lapa", "test", LAPA_TXT, lambda p: _edit(p, lambda ls: ls[:-1]), r"test_00000.txt:\d+: expected 106 lines"),
    ("lapa", "test", LAPA_TXT, lambda p: _edit(p, lambda ls: [*ls[:3], "1.0 y", *ls[4:]]), r"test_00000.txt:4: point: 'y'"),
    ("lapa", "test", "lapa/test/bbox/test_00001.txt", lambda p: p.write_text("1 2 3\n"), r"test_00001.txt:1: expected 'x1 y1 x2 y2'"),
    ("300w_lp", "train", "300w_lp/AFW/AFW_1000_1_0.mat", lambda p: _remat(p, pt2d=None), r"AFW_1000_1_0.mat \(variable 'pt2d'\): missing"),
    ("300w_lp", "train", "300w_lp/AFW/AFW_1000_1_0.mat", lambda p: _remat(p, pt2d=np.zeros((2, 67))), r"expected shape \(2 or 3, 68\)"),
    ("aflw2000", "test", "aflw2000/image00002.mat", lambda p: _remat(p, pt3d_68=None), r"image00002.mat \(variable 'pt3d_68'\): missing"),
    ("aflw2000", "test", "aflw2000/image00002.mat", lambda p: p.write_bytes(b"garbage" * 30), r"image00002.mat: not a readable MATLAB file"),
    ("mpii", "valid", "mpii/annot/valid.json", lambda p: p.write_text('[{"image": "a.jpg",'), r"valid.json:1: not valid JSON"),
    ("mpii", "valid", "mpii/annot/valid.json", lambda p: _json(p, lambda d: d[1].pop("joints")),
     r"valid.json \(entry 1\): missing key\(s\) \['joints'\]"),
    ("mpii", "valid", "mpii/annot/valid.json", lambda p: _json(p, lambda d: d[2].update(joints=d[2]["joints"][:15])),
     r"valid.json \(entry 2\): expected joints of shape \(16, 2\), got \(15, 2\)"),
    ("mpii", "valid", "mpii/annot/valid.json", lambda p: _json(p, lambda d: d[0].update(scale="big")),
     r"valid.json \(entry 0\): scale must be numbers, got big"),
    ("mpii", "valid", "mpii/annot/gt_valid.mat", lambda p: _remat(p, headboxes_src=np.zeros((2, 2, 2))),
     r"gt_valid.mat \(variable 'headboxes_src'\): expected head boxes for the JSON's 3 entries of shape \(2, 2, 3\)"),
    ("coco", "val", "coco/annotations/person_keypoints_val2017.json", lambda p: _json(p, lambda d: d.pop("annotations")),
     r"person_keypoints_val2017.json \(key 'annotations'\): missing"),
    ("coco", "val", "coco/annotations/person_keypoints_val2017.json", lambda p: _json(p, lambda d: d["annotations"][1].pop("bbox")),
     r"annotations\[1\] \(id 101\)\): missing key\(s\) \['bbox'\]"),
    ("coco", "val", "coco/annotations/person_keypoints_val2017.json",
     lambda p: _json(p, lambda d: d["annotations"][0].update(keypoints=[1, 2, 2] * 16)),
     r"annotations\[0\] \(id 100\)\): expected keypoints \(x, y, v for 17 joints\) of shape \(51,\), got \(48,\)"),
    ("coco", "val", "coco/annotations/person_keypoints_val2017.json",
     lambda p: _json(p, lambda d: d["annotations"][1].update(bbox=[1, 2, "wide", 4])), r"annotations\[1\].*bbox must be numbers"),
    ("coco", "val", "coco/annotations/person_keypoints_val2017.json",
     lambda p: _json(p, lambda d: d["annotations"][0].update(image_id=99)), r"image_id 99 is not in 'images'"),
]


@pytest.mark.parametrize("name,split,file,mutate,match", MALFORMED, ids=[f"{m[0]}-{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_annotations_name_the_file_and_line(data, tmp_path, name, split, file, mutate, match):
    root = _copy(data, tmp_path, file.split("/")[0])
    mutate(root / file)
    kwargs = {"box": "P2"} if name == "lapa" else {}
    with pytest.raises(AnnotationError, match=match) as error:
        _build(root, name, split, **kwargs)
    assert isinstance(error.value, ValueError)


# --- data root and registry ----------------------------------------------------------------------

def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert resolve_data_root() == Path("./data")
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert resolve_data_root() == tmp_path
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"


def test_env_data_root_is_used(data, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(data[0]))
    assert len(build_dataset("aflw2000", "test", input_size=32)) == 5


def test_registry(data):
    assert set(DATASETS) <= set(available_datasets()) and {"synthetic_faces", "synthetic_pose"} <= set(available_datasets())
    assert set(LAYOUT_DOCS) == set(DATASETS) and all(d.urls for d in LAYOUT_DOCS.values())
    with pytest.raises(KeyError, match="unknown dataset 'nope'.*wflw"):
        build_dataset("nope", "test")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        build_dataset("wflw", "val", data_root=data[0])
    with pytest.raises(ValueError, match="augment must be None"):
        build_dataset("synthetic_faces", "train", augment=Augment())
    assert WFLW98.name in repr(_build(data[0], "wflw", "test").layout)


def test_registry_builds_the_synthetic_benchmark():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = build_dataset("synthetic_faces", "train", input_size=64, length=3, seed=0)
    assert len(ds) == 3 and ds[0]["keypoints"].shape == (68, 2)


# --- what a machine has, in words ---------------------------------------------------------------------

def test_dataset_status_says_found_not_found_or_annotation_error(data, tmp_path):
    assert dataset_status("wflw", "test", data[0]) == {"status": "found", "detail": "4 samples"}
    missing = dataset_status("wflw", "test", tmp_path)
    assert missing["status"] == "not found"
    assert missing["detail"].startswith(f"looked for {tmp_path / 'wflw'}") and "\n" not in missing["detail"]
    root = _copy(data, tmp_path, "wflw")
    lists = root / "wflw" / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    (lists / "list_98pt_rect_attr_test.txt").write_text("not a number\n")
    broken = dataset_status("wflw", "test", root)
    assert broken["status"] == "annotation error" and "list_98pt_rect_attr_test.txt" in broken["detail"]


def test_layouts_markdown_has_every_dataset_its_folder_and_sources():
    text = layouts_markdown()
    for name, docs in LAYOUT_DOCS.items():
        cls = DATASETS[name]
        assert f"`build_dataset({name!r}, split)`" in text
        assert f"expected under `<data_root>/{cls.folder or cls.name}/`" in text
        assert all(f"* {url}" in text for url in docs.urls)
    assert "**HRNet CSV (300W in HRNet's files;" in text
    assert text.count("```text\n") == len(LAYOUT_DOCS)
    trees = text.split("```text\n")[1:]
    assert all(len(line) <= 84 for tree in trees for line in tree.split("```")[0].splitlines())


def test_normalisers_and_pupils_in_words():
    assert describe_normalizer("inter_ocular", WFLW98) == "inter-ocular: points 60 and 72 (outer eye corners)"
    assert describe_normalizer("inter_ocular", IBUG68) == "inter-ocular: points 36 and 45 (outer eye corners)"
    assert describe_normalizer("box", IBUG68).startswith("√(w·h)")
    assert describe_normalizer("box_size", AFLW19) == "the annotation's face box size (box_size column)"
    assert describe_normalizer("head", MPII16) == "PCKh: 0.6 × the head box diagonal"
    assert describe_normalizer("oks", COCO17) == "OKS (COCO keypoint AP, pycocotools)"
    assert describe_pupils(IBUG68) == "centroids of 36–41 and 42–47"
    assert describe_pupils(WFLW98) == "centroids of 96 and 97"
    assert describe_pupils(MPII16) == ""
