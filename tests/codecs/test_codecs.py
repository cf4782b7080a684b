"""Codecs: shapes, dtypes and devices, round-trip error bounds, randomized rounding, masking, flips."""
from __future__ import annotations

import json
import math

import pytest
import torch

from codec_outputs import apply, decodable_output, mirror_output, random_output
from conftest import DEVICES
from h3r.codecs import CODECS, DARK, H3R, UDP, ArgmaxQuarter, SoftArgmax, Vanilla, build_codec
from h3r.codecs.base import argmax_2d, gaussian_heatmaps
from h3r.codecs.h3r import rounding_neighbours
from h3r.config import PRESETS
from h3r.geometry import flip_keypoints

INPUT = (128, 96)  # not square, so that a swapped x and y shows
STRIDE = 4
HEATMAP = (32, 24)


def random_keypoints(n: int, k: int, margin: float = 0.0, size=INPUT, device="cpu") -> torch.Tensor:
    """Uniform keypoints (N, K, 2) in input pixels, at least ``margin`` px inside the image."""
    lo = torch.tensor([-0.5 + margin] * 2)
    hi = torch.tensor(size, dtype=torch.float32) - 0.5 - margin
    return (lo + torch.rand(n, k, 2) * (hi - lo)).to(device)


def keypoints_near_cells(codec, n: int, k: int, jitter: float = 0.2, margin: int = 3) -> torch.Tensor:
    """Keypoints within ``jitter`` cells of a cell centre ``margin`` cells from the border, in px
    (for RLE, whose one cell is the image: within ``jitter`` image sides of its centre)."""
    if codec.head == "regression":
        return codec.to_input((torch.rand(n, k, 2) * 2 - 1) * jitter)
    wh, hh = codec.heatmap_size
    cells = torch.stack([torch.randint(margin, wh - margin, (n, k)), torch.randint(margin, hh - margin, (n, k))], -1)
    return codec.to_input(cells + (torch.rand(n, k, 2) * 2 - 1) * jitter)


def log_with_floor(heatmaps: torch.Tensor) -> torch.Tensor:
    """``log h`` with zeros mapped to -1e4: softmax of it is ``h / sum h``."""
    return torch.where(heatmaps > 0, heatmaps.clamp_min(1e-30).log(), torch.full_like(heatmaps, -1e4))


# --- shapes, dtypes, devices ------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_shapes_dtypes_devices(preset, device):
    codec = build_codec(preset, INPUT, stride=STRIDE)
    kp = random_keypoints(3, 5, device=device).double()  # float64 in, float32 out
    target = codec.encode(kp, torch.ones(3, 5, device=device))
    assert target.keypoints.shape == (3, 5, 2) and target.keypoints.dtype == torch.float32
    assert target.weights.shape == (3, 5) and target.weights.dtype == torch.float32
    assert target.keypoints.device.type == target.weights.device.type == device
    if target.heatmaps is not None:
        assert target.heatmaps.shape == (3, 5, HEATMAP[1], HEATMAP[0])
        assert target.heatmaps.dtype == torch.float32 and target.heatmaps.device.type == device
    if target.x_labels is not None:
        assert target.x_labels.shape == (3, 5, codec.heatmap_size[0])
        assert target.y_labels.shape == (3, 5, codec.heatmap_size[1])
        assert target.x_labels.dtype == torch.float32 and target.y_labels.device.type == device
    assert target.to("cpu").x_labels is None or target.to("cpu").x_labels.device.type == "cpu"
    xy, scores = codec.decode(random_output(codec, 3, 5, device=device))
    assert xy.shape == (3, 5, 2) and xy.dtype == torch.float32 and xy.device.type == device
    assert scores.shape == (3, 5) and scores.device.type == device


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_bfloat16_heatmaps_decode_like_float32(preset):
    codec = build_codec(preset, INPUT, stride=STRIDE)
    output = decodable_output(codec, keypoints_near_cells(codec, 4, 6, margin=1 if codec.head == "regression" else 3))
    xy32, s32 = codec.decode(output)
    xy16, s16 = codec.decode(apply(output, torch.Tensor.bfloat16))
    assert xy16.dtype == torch.float32
    assert (xy16 - xy32).abs().max() < 0.1 * STRIDE
    assert torch.allclose(s16.float(), s32, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("shape", [(0, 5), (2, 0)])
def test_empty_batches_decode(preset, shape):
    xy, scores = build_codec(preset, INPUT, stride=STRIDE).decode(random_output(
        build_codec(preset, INPUT, stride=STRIDE), *shape))
    assert xy.shape == (*shape, 2) and scores.shape == shape


def test_decode_rejects_wrong_heatmap_size():
    with pytest.raises(ValueError, match="32x24"):
        build_codec("dark", INPUT, stride=STRIDE).decode(torch.rand(1, 2, 32, 24))


# --- round trips against the closed forms -------------------------------------------------------

@pytest.mark.parametrize("target", ["onehot", "gaussian"])
def test_round_argmax_error_is_within_half_a_stride(target):
    codec = Vanilla(INPUT, HEATMAP, quantize="round", target=target)
    kp = random_keypoints(8, 50)
    t = codec.encode(kp)
    err = (kp - codec.decode(t.heatmaps)[0])[t.weights > 0]  # truth - decoded, input px
    assert t.weights.mean() > 0.9
    assert (err >= -STRIDE / 2).all() and (err < STRIDE / 2 + 1e-4).all()
    assert err.abs().max() > 0.45 * STRIDE  # the bound is attained, not loose


def test_floor_argmax_error_is_in_zero_one_stride():
    codec = Vanilla(INPUT, HEATMAP, quantize="floor", target="onehot")
    kp = random_keypoints(8, 50)
    t = codec.encode(kp)
    err = (kp - codec.decode(t.heatmaps)[0])[t.weights > 0]
    # x = s (u + 1/2) - 1/2, decoded at floor(u): truth - decoded = s (u - floor u) in [0, s)
    assert (err >= -1e-4).all() and (err < STRIDE).all()
    assert abs(err.mean().item() - STRIDE / 2) < 0.2  # biased by half a stride


def test_quarter_on_its_own_target_is_argmax_and_on_exact_gaussians_within_a_quarter():
    codec = ArgmaxQuarter(INPUT, HEATMAP)
    kp = random_keypoints(8, 50, margin=3 * STRIDE)
    own = codec.encode(kp)  # symmetric Gaussian on the rounded cell: neighbours tie, no move
    assert torch.equal(codec.decode(own.heatmaps)[0], Vanilla(INPUT, HEATMAP).decode(own.heatmaps)[0])
    exact = gaussian_heatmaps(codec.to_heatmap(kp), HEATMAP, 2.0)
    err = (kp - codec.decode(exact)[0]).abs()
    assert err.max() <= STRIDE / 4 + 1e-4  # |f - sign(f)/4| <= 1/4 cell for f in [-1/2, 1/2]


@pytest.mark.parametrize("cls", [DARK, UDP])
def test_dark_and_udp_round_trip_their_exact_targets(cls):
    codec = cls(INPUT, HEATMAP, sigma=2.0)
    kp = random_keypoints(8, 50, margin=3 * 2.0 * STRIDE)  # 3 sigma from the border
    t = codec.encode(kp)
    assert t.weights.min() == 1
    err = (codec.decode(t.heatmaps)[0] - kp).abs()
    assert err.max() < 0.01


@pytest.mark.parametrize("kernel", [11, 13])
@pytest.mark.parametrize("radius", [1, 2])
def test_dark_local_modulation_equals_a_full_map_blur(kernel, radius):
    """The decoder blurs only the window around each peak; on noisy Gaussians its patch is the
    one a depthwise conv2d (zero padding) of the whole map gives, on every cell of the patch that
    is on the grid, border peaks included (their window is moved onto the grid)."""
    from h3r.codecs.dark import modulated_neighbourhood, newton_step

    codec = DARK(INPUT, HEATMAP, sigma=2.0)
    g = torch.Generator().manual_seed(1)
    clean = codec.encode(random_keypoints(6, 30)).heatmaps
    heatmaps = clean + 0.05 * torch.rand(clean.shape, generator=g)
    peaks, _ = argmax_2d(heatmaps)
    peaks[0, :4] = torch.tensor([[0.0, 0.0], [31.0, 23.0], [1.0, 22.0], [30.0, 5.0]])  # corners, borders

    t = torch.arange(kernel) - kernel // 2.0
    taps = torch.exp(-(t**2) / (2 * 2.0**2))
    taps = taps / taps.sum()
    n, k, hh, wh = heatmaps.shape
    blurred = torch.nn.functional.conv2d(heatmaps.reshape(n * k, 1, hh, wh), torch.outer(taps, taps)[None, None],
                                         padding=kernel // 2).reshape(n, k, hh, wh)
    steps = torch.arange(-radius, radius + 1)
    ys = (peaks[..., 1].long()[..., None] + steps)[..., :, None]  # (N, K, 2r+1, 1)
    xs = (peaks[..., 0].long()[..., None] + steps)[..., None, :]  # (N, K, 1, 2r+1)
    on = (ys >= 0) & (ys < hh) & (xs >= 0) & (xs < wh)
    full = blurred[torch.arange(n)[:, None, None, None], torch.arange(k)[None, :, None, None],
                   ys.clamp(0, hh - 1), xs.clamp(0, wh - 1)]

    local = modulated_neighbourhood(heatmaps, peaks, 2.0, kernel, radius)
    assert local.shape == (n, k, 2 * radius + 1, 2 * radius + 1) and local.isfinite().all()
    torch.testing.assert_close(local[on.expand_as(local)], full[on.expand_as(full)], rtol=1e-5, atol=1e-6)
    inside = on.flatten(-2).all(-1)
    stencil = "dark" if radius == 2 else "udp"
    torch.testing.assert_close(newton_step(local.log(), stencil)[0][inside], newton_step(full.log(), stencil)[0][inside],
                               rtol=0, atol=1e-4)


def test_udp_without_refinement_is_argmax():
    codec = UDP(INPUT, HEATMAP, refine="none")
    heatmaps = codec.encode(random_keypoints(4, 10)).heatmaps
    assert torch.equal(codec.decode_heatmap_units(heatmaps)[0], argmax_2d(heatmaps)[0])


def test_a_degenerate_decoder_says_why():
    """DARK's Taylor step reads 2 cells around the peak: on a 4x4 map (64 px at stride 16) no peak
    has them, so it decodes the argmax; UDP's stencil reaches 1 cell and still refines there."""
    dark = build_codec("dark", 64, stride=16, sigma=1.0)
    assert dark.degenerate() == ("4×4 map: DARK's Taylor step needs the peak 2 cells from the border, which no cell "
                                 "is, so it decodes the argmax")
    heatmaps = dark.encode(random_keypoints(8, 5, size=(64, 64))).heatmaps
    assert torch.equal(dark.decode_heatmap_units(heatmaps)[0], argmax_2d(heatmaps)[0])
    assert build_codec("dark", 80, stride=16).degenerate() is None  # 5x5: the centre cell steps
    assert build_codec("udp", 64, stride=16).degenerate() is None
    udp = build_codec("udp", 32, stride=16).degenerate()
    assert udp.startswith("2×2 map: UDP's Taylor step needs the peak 1 cell from")
    assert UDP(32, 2, refine="none").degenerate() is None  # the argmax by choice
    assert ArgmaxQuarter((64, 32), (8, 2)).degenerate() == ("8×2 map: every cell lies on the border along y, where "
                                                            "the quarter shift does not move the peak")
    assert H3R(48, 3).degenerate() == "3×3 map: the top 9 are all its cells, a weighted mean over the whole map"
    assert H3R(48, 3, select="window").degenerate() is None and H3R(64, 4).degenerate() is None
    assert all(build_codec(preset, INPUT, stride=STRIDE).degenerate() is None for preset in PRESETS)


def test_soft_argmax_on_a_sharp_target():
    codec = SoftArgmax(INPUT, HEATMAP)
    kp = random_keypoints(8, 50, margin=4 * STRIDE)
    t = codec.encode(kp)
    assert t.heatmaps is None and t.weights.min() == 1
    err = (codec.decode(decodable_output(codec, kp))[0] - kp).abs()
    assert err.max() < 1e-3


@pytest.mark.parametrize("weighting", ["softmax", "normalized", "sigmoid"])
@pytest.mark.parametrize("select", [("topk", 4), ("topk", 9), ("window", 1), ("window", 2)])
def test_h3r_expected_target_decodes_exactly(select, weighting):
    mode, size = select
    codec = H3R(INPUT, HEATMAP, select=mode, k=size if mode == "topk" else 9,
                radius=size if mode == "window" else 1, weighting=weighting)
    kp = random_keypoints(8, 50)
    t = codec.expected_target(kp)
    heatmaps = {"softmax": log_with_floor(t.heatmaps), "normalized": t.heatmaps,
                "sigmoid": codec.scores_from_probabilities(t.heatmaps)}[weighting]  # sigmoid: the logits
    err = (codec.decode(heatmaps)[0] - kp)[t.weights > 0].abs()
    assert t.weights.mean() > 0.9
    assert err.max() < 1e-4


def test_h3r_gaussian_expected_target_is_the_mixture_and_decodes_with_a_wide_window():
    codec = H3R(INPUT, HEATMAP, target="gaussian", sigma=1.0, select="window", radius=5, weighting="normalized")
    kp = random_keypoints(4, 20, margin=6 * STRIDE)
    t = codec.expected_target(kp)
    cells, probs = rounding_neighbours(t.keypoints, HEATMAP)
    mixture = sum(probs[..., j, None, None] * gaussian_heatmaps(cells[..., j, :], HEATMAP, 1.0) for j in range(4))
    assert torch.allclose(t.heatmaps, mixture, atol=1e-6)
    assert (codec.decode(t.heatmaps)[0] - kp).abs().max() < 1e-3


def test_h3r_top1_is_argmax():
    heatmaps = torch.randn(4, 7, HEATMAP[1], HEATMAP[0])
    top1 = H3R(INPUT, HEATMAP, k=1).decode(heatmaps)
    argmax = Vanilla(INPUT, HEATMAP).decode(heatmaps)
    assert torch.equal(top1[0], argmax[0]) and torch.equal(top1[1], argmax[1])


def test_h3r_official_decoder_is_topk_softmax_times_stride():
    heatmaps = torch.randn(2, 5, HEATMAP[1], HEATMAP[0])
    score, index = heatmaps.reshape(2, 5, 1, -1).topk(9, dim=-1)  # the official heatmap2coord
    coord = torch.cat([index % HEATMAP[0], index // HEATMAP[0]], dim=2)
    official = STRIDE * (coord * score.softmax(-1)).sum(-1)
    ours, scores = build_codec("h3r-official", INPUT, stride=STRIDE).decode(heatmaps)
    assert torch.allclose(ours, official, atol=1e-4)
    assert torch.equal(scores, heatmaps.amax(dim=(-2, -1)))


# --- batched building blocks ---------------------------------------------------------------------

def maps_of_every_kind(n: int = 4, k: int = 12) -> dict[str, torch.Tensor]:
    """(N, K, 24, 32) maps: smooth peaks, noise, two equal blobs, plateaus (ties everywhere)."""
    g = torch.Generator().manual_seed(3)
    uv = torch.rand(n, k, 2, generator=g) * torch.tensor([31.0, 23.0])
    peak = gaussian_heatmaps(uv, HEATMAP, 2.0)
    return {"peaks": peak + 0.01 * torch.rand(peak.shape, generator=g),
            "noise": torch.randn(n, k, 24, 32, generator=g),
            "two blobs": peak + gaussian_heatmaps(uv.flip(-1), HEATMAP, 2.0),
            "plateaus": (torch.rand(n, k, 24, 32, generator=g) * 3).floor()}


@pytest.mark.parametrize("kind", ["peaks", "noise", "two blobs", "plateaus"])
def test_argmax_2d_is_the_first_maximum_in_row_major_order(kind):
    heatmaps = maps_of_every_kind()[kind]
    cells, scores = argmax_2d(heatmaps)
    first = torch.from_numpy(heatmaps.flatten(2).numpy().argmax(-1))
    assert torch.equal(cells, torch.stack([first % 32, first // 32], -1).float())
    assert torch.equal(scores, heatmaps.amax((-2, -1)))


@pytest.mark.parametrize("k", [1, 4, 9, 16])
@pytest.mark.parametrize("kind", ["peaks", "noise", "two blobs", "plateaus"])
def test_topk_2d_is_torch_topk(kind, k, monkeypatch):
    """Values as ``torch.topk`` of the flattened maps always; the same cells unless the k-th value
    is tied (in an order of their own among equal values). Smooth peaks are read from the block
    around the argmax, everything else from the whole map."""
    from h3r.codecs import base

    heatmaps = maps_of_every_kind()[kind]
    whole = []
    monkeypatch.setattr(base, "_topk_flat", lambda maps, k, flat=base._topk_flat: whole.append(len(maps)) or flat(maps, k))
    cells, values = base.topk_2d(heatmaps, k)
    expected, index = heatmaps.flatten(2).topk(k + 1, dim=-1)
    assert torch.equal(values, expected[..., :k])
    assert torch.equal(values, heatmaps[torch.arange(4)[:, None, None], torch.arange(12)[None, :, None],
                                         cells[..., 1].long(), cells[..., 0].long()])  # the cells hold them
    untied = expected[..., k - 1] > expected[..., k]  # then the set of cells is determined
    ours = (cells[..., 1] * 32 + cells[..., 0]).long().sort(-1).values
    assert torch.equal(ours[untied], index[..., :k].sort(-1).values[untied])
    if kind == "peaks":
        assert sum(whole) == 0  # all from the block around the argmax
    if kind == "noise" and k > 1:  # for k = 1 the block is the argmax itself
        assert sum(whole) > 0.9 * 4 * 12


@pytest.mark.parametrize("size", [(5, 4), (32, 24)])
def test_topk_2d_of_small_maps_and_nan(size):
    from h3r.codecs.base import topk_2d

    heatmaps = gaussian_heatmaps(torch.rand(2, 3, 2) * 3, size, 2.0)
    heatmaps[0, 1, 2, 3] = float("nan")  # torch.topk puts NaN first
    cells, values = topk_2d(heatmaps, 9)  # small: the 5x5 block does not fit, the whole map
    expected, index = heatmaps.flatten(2).topk(9, dim=-1)
    torch.testing.assert_close(values, expected, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(cells, torch.stack([index % size[0], index // size[0]], -1).float())


def test_windows_are_the_slices():
    from h3r.codecs.base import windows

    heatmaps = torch.randn(3, 4, 24, 32)
    corners = torch.stack([torch.randint(0, 32 - 7 + 1, (3, 4)), torch.randint(0, 24 - 5 + 1, (3, 4))], -1)
    corners[0, 0] = torch.tensor([32 - 7, 24 - 5])  # the last window of the last row
    got = windows(heatmaps, corners, (7, 5))
    for n in range(3):
        for k in range(4):
            x, y = corners[n, k].tolist()
            assert torch.equal(got[n, k], heatmaps[n, k, y:y + 5, x:x + 7])
    assert torch.equal(windows(heatmaps.transpose(-1, -2).contiguous().transpose(-1, -2), corners, (7, 5)), got)


def test_soft_argmax_in_chunks_equals_at_once(monkeypatch):
    from h3r.codecs import integral

    codec = SoftArgmax(INPUT, HEATMAP, beta=3.0)
    heatmaps = torch.randn(5, 7, HEATMAP[1], HEATMAP[0])
    at_once = codec.decode(heatmaps)
    monkeypatch.setattr(integral, "CHUNK_CELLS", 3 * HEATMAP[0] * HEATMAP[1])  # 3 maps per chunk
    in_chunks = codec.decode(heatmaps)
    torch.testing.assert_close(in_chunks, at_once, rtol=0, atol=1e-5)


# --- randomized rounding ------------------------------------------------------------------------

SMALL_INPUT, SMALL_HEATMAP = (40, 32), (10, 8)  # many draws: keep the heatmaps small


def draws_of(kp: torch.Tensor, draws: int, seed: int = 0) -> torch.Tensor:
    """Activation points (draws, K, 2) in heatmap units of ``draws`` encodings of ``kp`` (1, K, 2)."""
    t = H3R(SMALL_INPUT, SMALL_HEATMAP).encode(kp.expand(draws, -1, -1),
                                                 generator=torch.Generator().manual_seed(seed))
    return argmax_2d(t.heatmaps)[0]


def test_randomized_rounding_is_unbiased_and_converges_as_one_over_sqrt_draws():
    codec = H3R(SMALL_INPUT, SMALL_HEATMAP)
    kp = random_keypoints(1, 100, margin=STRIDE, size=SMALL_INPUT)
    uv = codec.to_heatmap(kp)[0]
    cells = draws_of(kp, 4096)
    frac = uv - uv.floor()
    variance = frac * (1 - frac)  # of one draw, per axis
    errors = {}
    for d in (64, 4096):
        mean_error = cells[:d].mean(0) - uv
        assert (mean_error.abs() <= 5 * (variance / d).sqrt() + 1e-5).all()
        errors[d] = mean_error.abs().mean().item()
    assert 4 < errors[64] / errors[4096] < 16  # sqrt(4096 / 64) = 8


def test_neighbour_frequencies_match_the_product_probabilities():
    kp = random_keypoints(1, 50, margin=STRIDE, size=SMALL_INPUT)
    draws = 4000
    drawn = draws_of(kp, draws)  # (D, K, 2)
    cells, probs = rounding_neighbours(H3R(SMALL_INPUT, SMALL_HEATMAP).to_heatmap(kp), SMALL_HEATMAP)
    hits = (drawn[:, :, None, :] == cells).all(-1).float()  # (D, K, 4)
    assert torch.equal(hits.sum(-1), torch.ones(draws, 50))  # always one of the 4 neighbours
    freq = hits.mean(0)
    assert ((freq - probs[0]).abs() <= 5 * (probs[0] * (1 - probs[0]) / draws).sqrt() + 1e-6).all()


def test_neighbours_and_probabilities():
    uv = torch.tensor([[[3.25, 7.0], [0.0, 23.0], [31.0, 0.5]]])
    cells, probs = rounding_neighbours(uv, HEATMAP)
    assert torch.allclose(probs.sum(-1), torch.ones(1, 3))
    assert torch.allclose((probs[..., None] * cells).sum(-2), uv)  # the expectation is the point
    assert torch.allclose(probs[0, 0], torch.tensor([0.75, 0.25, 0.0, 0.0]))
    assert torch.equal(cells[0, 2, 3], torch.tensor([31.0, 1.0]))  # u = Wh - 1: lower is Wh - 2
    assert torch.allclose(probs[0, 2], torch.tensor([0.0, 0.5, 0.0, 0.5]))


def test_fixed_seed_reproduces_and_other_seeds_differ():
    codec = H3R(INPUT, HEATMAP)
    kp = random_keypoints(4, 30)
    first = codec.encode(kp, generator=torch.Generator().manual_seed(7)).heatmaps
    again = codec.encode(kp, generator=torch.Generator().manual_seed(7)).heatmaps
    other = codec.encode(kp, generator=torch.Generator().manual_seed(8)).heatmaps
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_generator_on_another_device_is_refused():
    with pytest.raises(ValueError, match="generator"):
        H3R(INPUT, HEATMAP).encode(random_keypoints(1, 2, device="cuda"), generator=torch.Generator())


# --- masking: edges, invisible, off-image, NaN -----------------------------------------------------

@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_first_and_last_cells_are_represented(preset):
    codec = build_codec(preset, INPUT, stride=STRIDE)
    wh, hh = codec.heatmap_size
    uv = torch.tensor([[[0.0, 0.0], [wh - 1, hh - 1], [0.0, hh - 1], [wh - 1, 0.0]]])
    kp = codec.to_input(uv)
    t = codec.encode(kp)
    assert torch.equal(t.weights, torch.ones(1, 4))
    if t.heatmaps is not None:  # the target peaks on the cell itself
        peaks = t.heatmaps.flatten(-2).argmax(-1)
        assert torch.equal(peaks, (uv[..., 1] * wh + uv[..., 0]).long())
    if t.x_labels is not None:  # on the bin itself
        assert torch.equal(t.x_labels.argmax(-1), uv[..., 0].long())
        assert torch.equal(t.y_labels.argmax(-1), uv[..., 1].long())


def test_h3r_last_cell_is_drawn_with_certainty_and_just_beyond_is_masked():
    codec = H3R(INPUT, HEATMAP)
    wh, hh = HEATMAP
    uv = torch.tensor([[[wh - 1, hh - 1], [wh - 1 + 1e-3, 5.0], [-1e-3, 5.0]]])
    t = codec.encode(codec.to_input(uv).expand(100, -1, -1))
    assert torch.equal(t.weights[0], torch.tensor([1.0, 0.0, 0.0]))
    assert (t.heatmaps[:, 0, hh - 1, wh - 1] == 1).all() and t.heatmaps[:, 1:].sum() == 0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_invisible_and_off_image_keypoints_get_weight_zero_and_no_target(preset):
    codec = build_codec(preset, INPUT, stride=STRIDE)
    w, h = INPUT
    kp = torch.tensor([[[10.0, 10.0], [float("nan"), 3.0], [-0.51, 10.0], [10.0, h - 0.49],
                        [w + 40.0, 10.0], [20.0, 20.0]]])
    visible = torch.tensor([[1, 0, 1, 1, 1, 0]])
    t = codec.encode(kp, visible)
    assert torch.equal(t.weights, torch.tensor([[1.0, 0, 0, 0, 0, 0]]))
    if t.heatmaps is not None:
        assert t.heatmaps[0, 0].max() > 0
        assert torch.equal(t.heatmaps[0, 1:], torch.zeros_like(t.heatmaps[0, 1:]))  # nothing wrapped in
    for labels in (t.x_labels, t.y_labels):
        if labels is not None:
            assert labels[0, 0].max() > 0 and not labels[0, 1:].any()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_nan_on_a_visible_keypoint_names_it(preset):
    codec = build_codec(preset, INPUT, stride=STRIDE)
    kp = random_keypoints(2, 5)
    kp[1, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="keypoint 3 of sample 1"):
        codec.encode(kp)
    kp[0, 2, 1] = float("inf")
    with pytest.raises(ValueError, match="keypoint 2 of sample 0"):
        codec.encode(kp)


def test_representable_ranges_differ_as_documented():
    """H3R and soft-argmax need u in [0, Wh - 1]; DARK takes the heatmap's extent [-1/2, Wh - 1/2]."""
    uv = torch.tensor([[[-0.4, 3.0], [31.4, 3.0], [0.0, 3.0], [31.0, 23.0]]])  # all on the image
    expected = {H3R: [0.0, 0.0, 1.0, 1.0], SoftArgmax: [0.0, 0.0, 1.0, 1.0], DARK: [1.0, 1.0, 1.0, 1.0]}
    for cls, weights in expected.items():
        codec = cls(INPUT, HEATMAP)
        assert codec.encode(codec.to_input(uv)).weights[0].tolist() == weights, cls.__name__


# --- flips ------------------------------------------------------------------------------------

# floor is not flip-equivariant (see test_floor_flip_moves_by_one_stride); "corner" is not either
EQUIVARIANT = [p for p in sorted(PRESETS) if p != "argmax-floor" and PRESETS[p].args.get("align") != "corner"]


def test_flip_twice_is_identity():
    kp = random_keypoints(3, 98)
    flip = torch.arange(98).flip(0)
    assert torch.equal(flip_keypoints(flip_keypoints(kp, INPUT[0], flip), INPUT[0], flip), kp)


@pytest.mark.parametrize("preset", EQUIVARIANT)
def test_encoding_a_flipped_image_is_the_mirrored_target(preset):
    codec = build_codec(preset, INPUT, stride=STRIDE)
    kp = random_keypoints(3, 20)
    encode = codec.expected_target if hasattr(codec, "expected_target") else codec.encode
    plain, flipped = encode(kp), encode(flip_keypoints(kp, INPUT[0]))
    assert torch.equal(plain.weights, flipped.weights)
    if plain.heatmaps is not None:
        assert torch.allclose(flipped.heatmaps, plain.heatmaps.flip(-1), atol=1e-5)
    if plain.x_labels is not None:
        assert torch.allclose(flipped.x_labels, plain.x_labels.flip(-1), atol=1e-5)
        assert torch.allclose(flipped.y_labels, plain.y_labels, atol=1e-5)


def test_floor_flip_moves_by_one_stride():
    """floor(Wh - 1 - u) = Wh - 2 - floor(u) for non-integer u: a flipped image decodes one
    stride to the left of the flipped decode, the bias the paper's analysis is about."""
    codec = build_codec("argmax-floor", INPUT, stride=STRIDE)
    kp = random_keypoints(3, 20, margin=STRIDE)
    plain = codec.decode(codec.encode(kp).heatmaps)[0]
    flipped = codec.decode(codec.encode(flip_keypoints(kp, INPUT[0])).heatmaps)[0]
    expected = flip_keypoints(plain, INPUT[0]) - torch.tensor([STRIDE, 0.0])
    assert torch.allclose(flipped, expected)


@pytest.mark.parametrize("preset", sorted(set(EQUIVARIANT) | {"argmax-floor"}))
def test_decoding_a_mirrored_heatmap_is_the_flipped_decode(preset):
    codec = build_codec(preset, INPUT, stride=STRIDE)
    output = decodable_output(codec, random_keypoints(3, 20))
    output = apply(output, lambda o: o + 0.01 * torch.rand(o.shape))
    xy = codec.decode(output)[0]
    mirrored = codec.decode(mirror_output(codec, output))[0]
    # UDP's reference stencil reads one diagonal only (see h3r.codecs.dark.newton_step)
    tolerance = 1e-2 if preset == "udp" else 1e-5
    assert (mirrored - flip_keypoints(xy, INPUT[0])).abs().max() < tolerance


def test_corner_alignment_shifts_a_flip_by_stride_minus_one():
    codec = build_codec("h3r-official", INPUT, stride=STRIDE)
    heatmaps = torch.randn(2, 6, 24, 32)
    xy = codec.decode(heatmaps)[0]
    shifted = flip_keypoints(xy, INPUT[0])
    shifted[..., 0] -= STRIDE - 1
    assert torch.allclose(codec.decode(heatmaps.flip(-1))[0], shifted, atol=1e-4)


# --- registry -----------------------------------------------------------------------------------

def test_build_codec_checks_names_and_strides():
    assert set(PRESETS) >= {"argmax-floor", "argmax-round", "argmax-quarter", "dark", "udp", "soft-argmax",
                            "h3r", "h3r-official"}
    assert isinstance(build_codec("vanilla", 64), CODECS["vanilla"])
    assert build_codec("dark", 256).heatmap_size == (64, 64)
    assert build_codec("h3r", (256, 192), stride=8).heatmap_size == (32, 24)
    assert build_codec("dark", 256, sigma=1.5).sigma == 1.5
    with pytest.raises(ValueError, match="not a multiple of the stride 8"):
        build_codec("dark", (256, 190), stride=8)
    with pytest.raises(ValueError, match="argmax-quarter"):
        build_codec("darkk", 256)
    with pytest.raises(ValueError, match="give only one"):
        build_codec("dark", 256, stride=4, heatmap_size=32)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="k must be"):
        H3R(INPUT, HEATMAP, k=32 * 24 + 1)
    with pytest.raises(ValueError, match="weighting"):
        H3R(INPUT, HEATMAP, weighting="mean")
    with pytest.raises(ValueError, match="blur_kernel"):
        DARK(INPUT, HEATMAP, blur_kernel=10)
    with pytest.raises(ValueError, match="refine"):
        UDP(INPUT, HEATMAP, refine="quarter")


# --- the codec benchmark runs ------------------------------------------------------------------

def test_codec_benchmark_runs(tmp_path):
    from h3r import benchmarks as bench

    out = tmp_path / "bench.json"
    report = bench.codecs_main(["--batch", "2", "--keypoints", "3", "--heatmap", "8", "--input", "32",
                         "--repeats", "2", "--warmup", "1", "--json", str(out), "--no-mmpose"])
    saved = json.loads(out.read_text())
    assert saved == report
    assert {row["codec"] for row in saved["results"]} == set(PRESETS) | set(bench.VARIANTS)
    assert all(0 < row["decode_share_of_argmax"] for row in saved["results"])
    assert all(math.isfinite(row["decode_per_s"]) and row["decode_per_s"] > 0 for row in saved["results"])
    assert saved["provenance"]["torch"] == torch.__version__


def test_randomized_gaussian_is_the_gaussian_twin_of_h3r():
    """gauss-random draws its Gaussian's centre by randomized rounding: the mean of its targets is
    the bilinear mixture of the 4 neighbours' Gaussians, and DARK decodes that to the point."""
    codec, h3r = build_codec("gauss-random", 64, stride=4), build_codec("h3r", 64, stride=4, target="gaussian")
    keypoints = 8 + 48 * torch.rand(50, 3, 2, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    one = codec.encode(keypoints, generator=torch.Generator().manual_seed(2)).heatmaps
    assert torch.equal(one, h3r.encode(keypoints, generator=torch.Generator().manual_seed(2)).heatmaps)
    mean = sum(codec.encode(keypoints, generator=g).heatmaps for _ in range(4000)) / 4000
    expected = codec.expected_target(keypoints).heatmaps
    torch.testing.assert_close(expected, h3r.expected_target(keypoints).heatmaps)
    assert (mean - expected).abs().max() < 0.03
    decoded, _ = codec.decode(expected)
    exact = build_codec("dark", 64, stride=4)
    floor, _ = exact.decode(exact.encode(keypoints).heatmaps)
    assert (decoded - keypoints).norm(dim=-1).mean() < 1.2 * (floor - keypoints).norm(dim=-1).mean() + 0.05
    assert torch.equal(build_codec("dark", 64, stride=4).expected_target(keypoints).heatmaps,
                       exact.encode(keypoints).heatmaps)
    edge = torch.tensor([[[0.5, 30.0], [61.0, 30.0]]])  # u = -0.25: on the image, off the centres' hull
    assert codec.encode(edge).weights.tolist() == [[0.0, 1.0]] and exact.encode(edge).weights.tolist() == [[1.0, 1.0]]
    with pytest.raises(ValueError, match="center must be one of"):
        build_codec("dark", 64, stride=4, center="rounded")


def test_onehot_rounding_is_the_deterministic_control_of_h3r():
    codec = build_codec("onehot-round", 64, stride=4)
    keypoints = 8 + 48 * torch.rand(20, 5, 2, generator=torch.Generator().manual_seed(0))
    target = codec.encode(keypoints)
    assert torch.equal(target.heatmaps.flatten(2).sum(-1), torch.ones(20, 5))  # one hot cell
    decoded, _ = codec.decode(target.heatmaps)
    uv = codec.to_heatmap(keypoints)
    torch.testing.assert_close(codec.to_heatmap(decoded), torch.floor(uv + 0.5))


def test_given_uniforms_fix_the_randomized_rounding_draw():
    """B = [U < f] per axis: the same uniforms give the same cells, whatever the generator."""
    from h3r.codecs import randomized_cells

    uv = torch.tensor([[[2.25, 5.75], [0.5, 3.0]]])
    uniforms = torch.tensor([[[0.2, 0.8], [0.6, 0.1]]])
    cells = randomized_cells(uv, (8, 8), uniforms=uniforms)
    assert cells.tolist() == [[[3.0, 5.0], [0.0, 3.0]]]
    codec = build_codec("h3r", 32, stride=4)
    keypoints = torch.rand(3, 5, 2) * 28 + 2
    fixed = torch.rand(3, 5, 2)
    a, b = (codec.encode(keypoints, uniforms=fixed).heatmaps for _ in range(2))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="uniforms must have"):
        randomized_cells(uv, (8, 8), uniforms=torch.rand(1, 3, 2))
