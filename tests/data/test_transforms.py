"""The crop/augmentation affine: exact geometry, flips, the rendered image, the official mapping."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures import blob_image, red_peak
from PIL import Image

from h3r.data.layouts import IBUG68, LAPA106, LAYOUTS, WFLW98
from h3r.data.transforms import (Augment, CropTransform, as_size, box_from_keypoints, color_jitter, crop_matrix,
                                 inverse, official_crop, square_box, warp, xywh_box)
from h3r.geometry import apply_affine, flip_keypoints

# FLIP_ORDER of the official H3R configs (models/300w/*/config.yaml), the reference for IBUG68.
OFFICIAL_300W_FLIP_ORDER = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
    27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51,
    50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
)


def _map(matrix, xy):
    return apply_affine(torch.as_tensor(xy, dtype=torch.float64), matrix).numpy()


@pytest.mark.parametrize("size", [(64, 64), (48, 64), (80, 40)])
def test_padded_box_lands_on_the_crop_edges(size):
    w, h = size
    box = (10.0, 20.0, 49.0, 39.0)  # 40 x 20 pixels, centre (29.5, 29.5)
    crop_w = 1.25 * max(40, 20 * w / h)
    crop_h = crop_w * h / w
    corners = [[29.5 - crop_w / 2, 29.5 - crop_h / 2], [29.5 + crop_w / 2, 29.5 + crop_h / 2], [29.5, 29.5]]
    out = _map(crop_matrix(box, size), corners)
    np.testing.assert_allclose(out, [[-0.5, -0.5], [w - 0.5, h - 0.5], [(w - 1) / 2, (h - 1) / 2]], atol=1e-9)


def test_augmentation_parameters_move_the_crop_as_documented():
    box, size = (0.0, 0.0, 39.0, 39.0), (64, 64)  # side 40, centre (19.5, 19.5)
    centre = np.array([[19.5, 19.5]])
    shifted = _map(crop_matrix(box, size, shift=(0.25, -0.5)), centre + [[10.0, -20.0]])
    np.testing.assert_allclose(shifted, [[31.5, 31.5]], atol=1e-9)
    zoomed = _map(crop_matrix(box, size, scale=2.0), [[19.5 + 50, 19.5]])  # half the crop width
    np.testing.assert_allclose(zoomed, [[63.5, 31.5]], atol=1e-9)
    # counter-clockwise on screen: a point right of the centre moves up (smaller y)
    turned = _map(crop_matrix(box, size, rotation=90.0), [[29.5, 19.5]])
    np.testing.assert_allclose(turned, [[31.5, 31.5 - 10 * 64 / 50]], atol=1e-9)


def test_round_trip_through_random_augmentation_is_exact():
    rng = np.random.default_rng(0)
    image = np.zeros((100, 120, 3), np.uint8)
    for trial in range(60):
        size = [(64, 64), (96, 128), (256, 192)][trial % 3]
        keypoints = rng.uniform(0, 1000, size=(WFLW98.num_keypoints, 2))
        transform = CropTransform(size, WFLW98.flip_index, augment=Augment(rotation=45, scale=0.4, translate=0.3))
        crop = transform(image, keypoints, box_from_keypoints(keypoints), rng)
        back = inverse(crop.keypoints, crop.affine).numpy()
        np.testing.assert_allclose(back, keypoints[crop.order], atol=1e-4)


def test_inverse_is_batched():
    rng = np.random.default_rng(1)
    matrices = torch.stack([crop_matrix(rng.uniform(0, 50, 4).cumsum(), (64, 48), rotation=r, flip=f)
                            for r, f in ((10, False), (-30, True), (90, True))])
    points = torch.as_tensor(rng.uniform(-10, 70, size=(3, 5, 2)))
    batched = inverse(points, matrices)
    single = torch.stack([inverse(p, m) for p, m in zip(points, matrices)])
    torch.testing.assert_close(batched, single)
    torch.testing.assert_close(apply_affine(batched, matrices), points)


def test_flip_mirrors_the_crop_and_twice_is_identity():
    size = (64, 48)
    box = (3.0, 7.0, 60.0, 44.0)
    points = np.random.default_rng(2).uniform(0, 60, size=(WFLW98.num_keypoints, 2))
    plain = torch.as_tensor(_map(crop_matrix(box, size, rotation=17), points))
    mirrored = torch.as_tensor(_map(crop_matrix(box, size, rotation=17, flip=True), points))
    torch.testing.assert_close(mirrored, flip_keypoints(plain, size[0]))  # x -> W - 1 - x
    # what a flipped sample holds: mirrored, then re-indexed; flipping it again restores the plain crop
    sample = mirrored[list(WFLW98.flip_index)]
    torch.testing.assert_close(flip_keypoints(sample, size[0], WFLW98.flip_index), plain)


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_flip_index_is_an_involution(layout):
    index = np.array(layout.flip_index)
    assert sorted(index) == list(range(layout.num_keypoints))
    np.testing.assert_array_equal(index[index], np.arange(layout.num_keypoints))


def test_layout_flip_orders_match_the_official_configs():
    assert IBUG68.flip_index == OFFICIAL_300W_FLIP_ORDER
    assert LAPA106.flip_index[104] == 105 and LAPA106.flip_index[66] == 79


@pytest.mark.parametrize("seed", range(8))
def test_rendered_crop_agrees_with_the_mapped_keypoint(seed):
    rng = np.random.default_rng(seed)
    marker = rng.uniform([52, 44], [68, 56])  # near the box centre, so it stays inside every crop
    points = np.concatenate([marker[None], rng.uniform([30, 25], [90, 75], size=(5, 2))])
    image = blob_image(points, (120, 100), seed=seed)
    transform = CropTransform((96, 96), range(6),
                              augment=Augment(rotation=40, scale=0.2, translate=0.1, flip=0.5,
                                              brightness=0, contrast=0, saturation=0))
    crop = transform(image, points, box_from_keypoints(points), rng)
    expected = _map(crop.affine, marker[None])[0]
    np.testing.assert_allclose(red_peak(crop.image), expected, atol=0.25)


def test_official_mapping_reproduces_torchalign():
    size, box = (64, 64), torch.tensor([[12.3, 20.8, 51.6, 57.1]])
    # torchalign/api.py, FacialLandmarkDetector.resized_crop / resized_crop_inverse (batch of one)
    wh = (box[:, 2:] - box[:, :2] + 1).max(1)[0] * 1.25
    xy = (box[:, :2] + box[:, 2:] - wh.unsqueeze(1) + 1) / 2.0
    rect = torch.cat([xy, xy + wh.unsqueeze(1)], 1)
    scale = torch.stack([size[0] / (rect[:, 2] - rect[:, 0]), size[1] / (rect[:, 3] - rect[:, 1])]).t()
    crop_points = torch.rand(1, 7, 2) * 64
    official = crop_points / scale[:, None, :] + rect[:, None, :2]
    _, mapping = official_crop(box[0].tolist(), size)
    torch.testing.assert_close(inverse(crop_points.double(), mapping).float(), official, atol=1e-4, rtol=0)


def test_official_render_is_what_pil_shows():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(90, 110, 3), dtype=np.uint8)
    box, size = (21.4, 18.7, 58.2, 61.9), (96, 96)  # an upscaling crop: PIL's bilinear is plain bilinear
    render, _ = official_crop(box, size)
    wh = max(box[2] - box[0] + 1, box[3] - box[1] + 1) * 1.25
    rect = ((box[0] + box[2] + 1 - wh) / 2, (box[1] + box[3] + 1 - wh) / 2)
    rect = (*rect, rect[0] + wh, rect[1] + wh)
    pil = np.asarray(Image.fromarray(image).crop(rect).resize(size, Image.BILINEAR)).astype(int)
    ours = warp(image, render, size).astype(int)
    inner = (slice(3, -3), slice(3, -3))
    assert np.abs(pil[inner] - ours[inner]).max() <= 1


def test_official_and_exact_mappings_differ_by_the_half_pixel_offset():
    size, box = (64, 64), (10.0, 20.0, 49.0, 59.0)  # wh = 50 and an integer window: no PIL rounding
    render, mapping = official_crop(box, size)
    exact = crop_matrix(box, size)
    torch.testing.assert_close(render, exact)
    u = torch.rand(9, 2, dtype=torch.float64) * 64
    offset = inverse(u, exact) - inverse(u, mapping)
    torch.testing.assert_close(offset, torch.full_like(u, -0.5 * (1 - 50 / 64)))


def test_color_jitter():
    image = np.random.default_rng(4).integers(0, 200, size=(8, 9, 3), dtype=np.uint8)
    assert color_jitter(image, 1, 1, 1) is image
    darker = color_jitter(image, 0.5, 1, 1).astype(int)
    assert np.abs(darker - image.astype(int) / 2).max() <= 0.5 + 1e-9
    grey = color_jitter(image, 1, 1, 0)
    assert (grey.max(-1) - grey.min(-1)).max() <= 1
    flat = color_jitter(image, 1, 0, 1)
    assert flat.max() - flat.min() <= 1


def test_augment_draws_are_seeded_and_in_range():
    augment = Augment(rotation=10, scale=0.1, translate=0.05, flip=0.5)
    a = augment.sample(np.random.default_rng(5))
    assert a == augment.sample(np.random.default_rng(5))
    draws = [augment.sample(np.random.default_rng(s)) for s in range(200)]
    assert all(abs(d["rotation"]) <= 10 and 0.9 <= d["scale"] <= 1.1 for d in draws)
    assert all(max(abs(v) for v in d["shift"]) <= 0.05 for d in draws)
    assert 60 < sum(d["flip"] for d in draws) < 140


def test_boxes_and_sizes():
    points = np.array([[[1.0, 5.0], [np.nan, np.nan], [4.0, 2.0]]])
    np.testing.assert_array_equal(box_from_keypoints(points), [[1.0, 2.0, 4.0, 5.0]])
    box = square_box(np.array([10.0]), np.array([20.0]), np.array([7.0]))
    np.testing.assert_array_equal(box, [[7.0, 17.0, 13.0, 23.0]])  # x2 - x1 + 1 == 7
    np.testing.assert_array_equal(xywh_box(np.array([[3, 4, 10, 20]])), [[3, 4, 12, 23]])
    assert as_size(64) == (64, 64) and as_size((192, 256)) == (192, 256)
    with pytest.raises(ValueError, match="width, height"):
        as_size((0, 3))
    with pytest.raises(ValueError, match="empty"):
        crop_matrix((5, 5, 2, 9), (8, 8))
    with pytest.raises(ValueError, match="padding must be positive"):
        CropTransform(64, range(3), padding=0)
