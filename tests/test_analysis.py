"""Codec-only NME (h3r.analysis) and annotation-only face datasets, checked against exact values."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from fixtures import WRITERS

from h3r.analysis import (ROUND_TRIPS, LandmarkSet, RoundTrip, codec_nme, codec_nme_table, decoder_input,
                          find_face_datasets, landmark_set, round_trip)
from h3r.codecs import build_codec
from h3r.data.layouts import IBUG68
from h3r.data.registry import build_dataset
from h3r.protocols import PROTOCOLS, face_benchmarks

FACES = [name for name in face_benchmarks() if name in WRITERS]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for name in FACES:
        WRITERS[name](root)
    return root


def _interior(n: int, k: int, size: int = 256, margin: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return margin + (size - 1 - 2 * margin) * torch.rand(n, k, 2, generator=g, dtype=torch.float64)


# --- annotation-only datasets --------------------------------------------------------------------

def test_annotations_only_builds_the_index_without_images(data, tmp_path):
    shutil.copytree(data / "wflw" / "WFLW_annotations", tmp_path / "wflw" / "WFLW_annotations")
    (tmp_path / "wflw" / "WFLW_images").mkdir()
    with pytest.raises(FileNotFoundError, match="not found"):
        build_dataset("wflw", "test", data_root=tmp_path)
    ds = build_dataset("wflw", "test", data_root=tmp_path, annotations_only=True)
    full = build_dataset("wflw", "test", data_root=data)
    assert len(ds) == len(full) == 4 and ds.summary()["skipped_missing_image"] == 0
    np.testing.assert_array_equal(ds.boxes, full.boxes)
    np.testing.assert_array_equal(ds.ann.normalizers, full.ann.normalizers)
    with pytest.raises(RuntimeError, match="annotations_only=True"):
        ds[0]


def test_landmark_set_matches_the_samples_a_dataset_serves(data):
    for name in FACES:
        ds = build_dataset(name, PROTOCOLS[name].test_split, data_root=data, input_size=64)
        lm = landmark_set(ds)
        assert len(lm) == len(ds) and lm.flip_index == ds.layout.flip_index and lm.input_size == (64, 64)
        for i in range(len(ds)):
            s = ds[i]
            torch.testing.assert_close(lm.affines[i], s["affine"])
            torch.testing.assert_close(lm.normalizers[i].float(), s["normalizer"])
            vis = s["visible"] > 0
            assert torch.equal(lm.visible[i], vis)
            torch.testing.assert_close(lm.crop_keypoints()[i][vis].float(), s["keypoints"][vis])


def test_subsets_of_a_landmark_set(data):
    lm = landmark_set(build_dataset("wflw", "test", data_root=data))
    assert len(lm) == 4 and len(landmark_set(build_dataset("wflw", "test", data_root=data), limit=1)) == 1
    spread = lm.spread(3)
    torch.testing.assert_close(spread.keypoints, lm.keypoints[[0, 2, 3]], equal_nan=True)
    torch.testing.assert_close(spread.affines, lm.affines[[0, 2, 3]])
    assert lm.spread(None) is lm and lm.spread(4) is lm


def test_landmark_set_refuses_augmented_crops(data):
    from h3r.data.transforms import Augment

    ds = build_dataset("wflw", "test", data_root=data, augment=Augment())
    with pytest.raises(ValueError, match="augment=None"):
        landmark_set(ds)


def test_synthetic_landmarks_are_the_rendered_ones():
    ds = build_dataset("synthetic_faces", "test", input_size=128, length=3, seed=0)
    lm = landmark_set(ds)
    for i in range(3):
        torch.testing.assert_close(lm.keypoints[i].float(), ds[i]["keypoints"])
        torch.testing.assert_close(lm.normalizers[i].float(), ds[i]["normalizer"])
    assert torch.equal(lm.affines, torch.eye(2, 3, dtype=torch.float64).expand(3, 2, 3))


def test_find_face_datasets_reports_what_is_missing(data, tmp_path):
    found, missing = find_face_datasets(tmp_path)
    assert not found and set(missing) == set(face_benchmarks())
    assert all("not found" in message and str(tmp_path) in message for message in missing.values())
    found, missing = find_face_datasets(data, input_size=64)
    assert set(found) == set(FACES) and all(len(ds) > 0 for ds in found.values())


# --- round trips ----------------------------------------------------------------------------------

@pytest.mark.parametrize("stride", [2, 4, 8])
def test_lossless_and_quantized_round_trips(stride):
    kp = _interior(32, 5)
    expected, ok = round_trip(build_codec("h3r", 256, stride=stride), kp, target="expected")
    assert ok.all() and (expected - kp).abs().max() < 1e-3
    rounded, _ = round_trip(build_codec("argmax-round", 256, stride=stride), kp)
    assert (rounded - kp).abs().max() <= stride / 2 + 1e-4
    assert (rounded - kp).abs().max() > stride / 4  # it is not lossless


@pytest.mark.parametrize("stride", [2, 4, 16])
def test_official_decoder_on_centre_aligned_targets_and_its_flip_test(stride):
    """Index x stride reads a centre-aligned target -(s-1)/2 px off on both axes; the flip test,
    which mirrors x only, cancels the x offset and keeps the y offset."""
    kp = _interior(16, IBUG68.num_keypoints, seed=1)
    h3r, official = build_codec("h3r", 256, stride=stride), build_codec("h3r-official", 256, stride=stride)
    pred, _ = round_trip(h3r, kp, target="expected", decoder=official)
    torch.testing.assert_close(pred - kp, torch.full_like(kp, -(stride - 1) / 2), atol=1e-3, rtol=0)
    flipped, _ = round_trip(h3r, kp, target="expected", decoder=official, flip_index=IBUG68.flip_index)
    torch.testing.assert_close(flipped[..., 0], kp[..., 0], atol=1e-3, rtol=0)
    torch.testing.assert_close(flipped[..., 1] - kp[..., 1], torch.full_like(kp[..., 1], -(stride - 1) / 2),
                               atol=1e-3, rtol=0)


def test_flip_test_turns_floor_into_the_cell_midpoint():
    """floor(u) averaged with the mirror's floor, Wh - 1 - ceil(u): (floor + ceil) / 2 along x."""
    s = 4
    kp = _interior(8, IBUG68.num_keypoints, seed=2)
    pred, _ = round_trip(build_codec("argmax-floor", 256, stride=s), kp, flip_index=IBUG68.flip_index)
    u = (kp[..., 0] + 0.5) / s - 0.5
    torch.testing.assert_close(pred[..., 0], s * ((u.floor() + u.ceil()) / 2 + 0.5) - 0.5, atol=1e-4, rtol=0)


def test_one_draw_is_seeded_and_unbiased():
    codec = build_codec("h3r", 256, stride=8)
    kp = _interior(400, 4, seed=3)
    a, _ = round_trip(codec, kp, generator=torch.Generator().manual_seed(5))
    b, _ = round_trip(codec, kp, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    error = a - kp
    assert error.abs().max() <= 8 + 1e-4 and error.mean(dim=(0, 1)).abs().max() < 6 * 8 / 2 / math.sqrt(1600)


def test_unrepresentable_keypoints_are_masked_not_scored():
    kp = _interior(2, 3)
    kp[0, 1] = torch.tensor([300.0, 100.0])  # off the crop
    visible = torch.ones(2, 3, dtype=torch.bool)
    visible[1, 2] = False
    _, ok = round_trip(build_codec("h3r", 256, stride=4), kp, visible)
    assert ok.tolist() == [[True, False, True], [True, True, False]]
    with pytest.raises(ValueError, match="heatmap"):
        round_trip(build_codec("h3r", 256, stride=4), kp, decoder=build_codec("h3r-official", 256, stride=8))
    with pytest.raises(ValueError, match="vanilla encodes deterministically: it has no expected target"):
        round_trip(build_codec("argmax-round", 256, stride=4), kp, target="expected")


def test_round_trip_chunks_give_the_same_result():
    kp = _interior(10, 7)
    codec = build_codec("dark", 256, stride=4)
    whole, _ = round_trip(codec, kp)
    chunked, _ = round_trip(codec, kp, cell_budget=2 * 7 * 64 * 64)
    # DARK's blur is a batched float32 matmul, which may round differently for another batch size
    torch.testing.assert_close(whole, chunked, rtol=0, atol=1e-4)


# --- NME in original pixels --------------------------------------------------------------------

def _scaled_set(n: int = 6, k: int = 68, zoom: float = 2.0) -> LandmarkSet:
    """Landmarks whose crop is a pure zoom by ``zoom`` about the origin, normaliser 50 px."""
    crop = _interior(n, k, seed=4)
    affines = torch.tensor([[zoom, 0, 0], [0, zoom, 0]], dtype=torch.float64).expand(n, 2, 3).clone()
    return LandmarkSet("zoom", crop / zoom, torch.ones(n, k, dtype=torch.bool), affines,
                       torch.full((n,), 50.0, dtype=torch.float64), (256, 256), IBUG68.flip_index)


def test_codec_nme_is_measured_in_original_pixels():
    lm, s = _scaled_set(), 4
    nmes, scored = codec_nme(lm, ROUND_TRIPS["h3r target, official decoder"], s)
    # -(s-1)/2 crop px on both axes = (s-1)/sqrt(2) crop px = (s-1)/(2 sqrt(2)) original px
    torch.testing.assert_close(nmes, torch.full((6,), (s - 1) / (2 * math.sqrt(2)) / 50, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    assert scored.all()
    lossless, _ = codec_nme(lm, RoundTrip("h3r-official", "expected"), s)
    assert lossless.max() < 1e-5


@pytest.mark.parametrize("flip_test", [False, True])
def test_h3rs_decoder_reads_a_onehot_target_as_a_spatial_ce_network_its_hot_cell(flip_test):
    """onehot-round's network is trained with spatial-softmax CE, so it outputs log p: the H3R
    decoder's softmax over the top 9 then puts all the weight on the hot cell (on the raw 0/1 cells
    it would put only e / (e + 8) there)."""
    lm = _scaled_set(n=3)
    own, _ = codec_nme(lm, RoundTrip("onehot-round"), 8, flip_test)
    read, _ = codec_nme(lm, RoundTrip("onehot-round", "encode", "h3r"), 8, flip_test)
    torch.testing.assert_close(read, own, atol=1e-9, rtol=0)


def test_decoders_read_the_target_as_a_network_trained_on_it():
    kp = _interior(2, 3)
    onehot, dark = build_codec("onehot-round", 256, stride=8), build_codec("dark", 256, stride=8)
    target = onehot.encode(kp).heatmaps
    read, weights = decoder_input(onehot, kp, decoder=dark, loss="spatial_ce")
    torch.testing.assert_close(read, target.clamp_min(1e-30).log())  # spatial CE: logits = log p
    assert torch.equal(decoder_input(onehot, kp, decoder=dark)[0], target)  # MSE regresses the target
    h3r = build_codec("h3r", 256, stride=8)
    torch.testing.assert_close(decoder_input(onehot, kp, decoder=h3r)[0], h3r.scores_from_probabilities(target))


def test_a_sample_with_nothing_representable_is_nan():
    lm = _scaled_set(n=2, k=68)
    lm.keypoints[1] = 1000.0  # far off the crop
    nmes, scored = codec_nme(lm, ROUND_TRIPS["argmax-round"], 4)
    assert math.isfinite(nmes[0]) and math.isnan(nmes[1]) and not scored[1].any()


def test_table_rows_and_the_cell_budget():
    lm = _scaled_set(n=6)
    trips = {k: ROUND_TRIPS[k] for k in ("argmax-round", "h3r (expected target)")}
    table = codec_nme_table([lm], [4, 16], trips, cell_budget=68 * 64 * 64 * 2)
    assert len(table) == 4 and set(table.columns) >= {"dataset", "stride", "heatmap", "codec", "nme", "samples"}
    assert table.set_index(["stride", "codec"]).samples.to_dict() == {
        (4, "argmax-round"): 2, (4, "h3r (expected target)"): 2, (16, "argmax-round"): 6,
        (16, "h3r (expected target)"): 6}
    nme = table.set_index(["stride", "codec"]).nme
    assert nme[(4, "h3r (expected target)")] < 1e-3 < nme[(4, "argmax-round")] < nme[(16, "argmax-round")]
    again = codec_nme_table([lm], [4, 16], trips, cell_budget=68 * 64 * 64 * 2)
    assert table.equals(again)


# --- real annotations --------------------------------------------------------------------------

def test_300w_validation_annotations(repo_data):
    found, _ = find_face_datasets(repo_data, names=["300w_csv"])
    lm = landmark_set(found["300w_csv"])
    assert len(lm) == 689 and lm.visible.all()
    trips = {k: ROUND_TRIPS[k] for k in ("argmax-floor", "argmax-round", "h3r (expected target)")}
    table = codec_nme_table([lm.spread(120)], [8], trips).set_index("codec")
    assert (table.scored == 1).all() and (table.samples == 120).all()
    # the floor encoder's mean 2-D error is twice the round encoder's, whatever the normaliser
    assert table.nme["argmax-floor"] / table.nme["argmax-round"] == pytest.approx(2, rel=0.1)
    assert table.nme["h3r (expected target)"] < 1e-3


def test_neighbour_weights_of_the_expected_target_are_exact():
    from h3r.analysis import neighbour_weights
    from h3r.codecs import H3R

    codec = H3R(64, 16)
    keypoints = 3 + 56 * torch.rand(4, 7, 2, generator=torch.Generator().manual_seed(0))
    expected = codec.expected_target(keypoints).heatmaps
    perfect = neighbour_weights(expected.clamp_min(1e-30).log(), keypoints, codec)
    assert perfect["valid"].all()
    torch.testing.assert_close(perfect["mass"], torch.ones(4, 7))
    assert perfect["error"].max() < 1e-5
    flat = neighbour_weights(torch.zeros(4, 7, 16, 16), keypoints, codec)  # a uniform prediction
    torch.testing.assert_close(flat["mass"], torch.full((4, 7), 4 / 256))
    torch.testing.assert_close(flat["predicted"], torch.full((4, 7, 4), 0.25))
    torch.testing.assert_close(flat["error"], (0.25 - flat["bilinear"]).abs().mean(-1))
    onehot = codec.encode(keypoints, generator=torch.Generator().manual_seed(1)).heatmaps
    drawn = neighbour_weights(onehot.clamp_min(1e-30).log(), keypoints, codec)
    torch.testing.assert_close(drawn["mass"], torch.ones(4, 7))  # one draw lies on a neighbour...
    assert (drawn["predicted"].max(-1).values == 1).all()  # ... all its mass on one of them
