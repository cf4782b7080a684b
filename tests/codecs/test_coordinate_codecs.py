"""The codecs of other heads and decoders: SimCC (and its randomized rounding), RLE, local soft-argmax."""
from __future__ import annotations

import pytest
import torch

from h3r.codecs import RLE, LocalSoftArgmax, SimCC, Vanilla, build_codec, simcc_bins
from h3r.codecs.base import gaussian_heatmaps

INPUT = (64, 48)
HEATMAP = (16, 12)


def keypoints(n: int, k: int, margin: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Uniform keypoints (N, K, 2) in input pixels, ``margin`` px inside the image."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = -0.5 + margin, torch.tensor(INPUT, dtype=torch.float32) - 0.5 - margin
    return lo + torch.rand(n, k, 2, generator=g) * (hi - lo)


# --- SimCC --------------------------------------------------------------------------------------

def test_bins_follow_the_split_ratio():
    assert simcc_bins(INPUT, 2.0) == (128, 96) and simcc_bins(INPUT, 1.5) == (96, 72)
    codec = SimCC(INPUT, split_ratio=2.0)
    assert codec.heatmap_size == (128, 96) and codec.stride == (0.5, 0.5)
    assert build_codec("simcc", INPUT, stride=4).heatmap_size == (128, 96)  # the stride is the network's
    assert build_codec("simcc-random", INPUT, stride=4, split_ratio=3.0).heatmap_size == (192, 144)


@pytest.mark.parametrize("label", ["onehot", "gaussian"])
def test_rounded_labels_decode_within_half_a_bin(label):
    codec = SimCC(INPUT, split_ratio=2.0, label=label, sigma=2.0)
    kp = keypoints(6, 40)
    t = codec.encode(kp)
    assert t.heatmaps is None and t.weights.mean() > 0.95
    xy, scores = codec.decode((t.x_labels, t.y_labels))
    err = (xy - kp)[t.weights > 0]
    half_bin = 0.5 / codec.split_ratio
    assert err.abs().max() <= half_bin + 1e-4 and err.abs().max() > 0.9 * half_bin
    if label == "gaussian":  # normalised as mmpose: the label sums to about 1, its peak 1 / (sigma sqrt(2 pi))
        inner = keypoints(6, 40, margin=8.0)
        labels = codec.encode(inner).x_labels
        torch.testing.assert_close(labels.sum(-1), torch.ones(6, 40), atol=1e-4, rtol=0)
        torch.testing.assert_close(labels.amax(-1), torch.full((6, 40), 1 / (2.0 * (2 * torch.pi) ** 0.5)))
    torch.testing.assert_close(scores, torch.minimum(t.x_labels.amax(-1), t.y_labels.amax(-1)))


def test_the_one_hot_control_puts_one_bin_per_axis_on_the_rounded_one():
    codec = build_codec("simcc-round", INPUT, stride=4)
    kp = keypoints(4, 10)
    t = codec.encode(kp)
    uv = codec.to_heatmap(kp)
    assert torch.equal(t.x_labels.sum(-1), t.weights) and torch.equal(t.y_labels.sum(-1), t.weights)
    assert torch.equal(t.x_labels.argmax(-1).float(), torch.floor(uv[..., 0] + 0.5))
    assert codec.decoder == "argmax" and not codec.randomized


def test_randomized_rounding_draws_a_neighbour_and_is_unbiased():
    codec = build_codec("simcc-random", INPUT, stride=4)
    assert codec.randomized and codec.decoder == "topk"
    kp = keypoints(1, 30, margin=1.0)
    uv = codec.to_heatmap(kp)[0]
    draws = 4000
    t = codec.encode(kp.expand(draws, -1, -1), generator=torch.Generator().manual_seed(0))
    bins = torch.stack([t.x_labels.argmax(-1), t.y_labels.argmax(-1)], -1).float()  # (D, K, 2)
    assert torch.equal(t.x_labels.sum(-1), torch.ones(draws, 30))  # one-hot
    assert ((bins == uv.floor()) | (bins == uv.floor() + 1)).all()  # one of the two neighbours
    frac = uv - uv.floor()
    noise = (frac * (1 - frac) / draws).sqrt()  # the standard error of the mean draw
    assert ((bins.mean(0) - uv).abs() <= 5 * noise + 1e-5).all()
    # the mean label is the expected target, the 2-bin linear split
    expected = codec.expected_target(kp)
    torch.testing.assert_close(t.x_labels.mean(0), expected.x_labels[0], atol=0.04, rtol=0)
    lo = uv.floor().long()
    assert torch.allclose(expected.x_labels[0].gather(-1, lo[:, :1]).squeeze(-1), 1 - frac[:, 0])
    assert torch.allclose(expected.x_labels[0].sum(-1), torch.ones(30))


@pytest.mark.parametrize("k", [2, 3, 5])
def test_the_expected_target_decodes_exactly_with_top_k(k):
    codec = SimCC(INPUT, label="onehot", rounding="random", decoder="topk", k=k)
    kp = keypoints(5, 40)
    t = codec.expected_target(kp)
    assert t.weights.mean() > 0.95
    logits = tuple(codec.scores_from_probabilities(labels) for labels in (t.x_labels, t.y_labels))
    err = (codec.decode(logits)[0] - kp)[t.weights > 0]
    assert err.abs().max() < 1e-4


def test_top_1_is_argmax_and_the_fixed_seed_reproduces():
    x, y = torch.randn(3, 4, 128), torch.randn(3, 4, 96)
    top1 = SimCC(INPUT, decoder="topk", k=1).decode((x, y))
    argmax = SimCC(INPUT).decode((x, y))
    assert torch.equal(top1[0], argmax[0]) and torch.equal(top1[1], argmax[1])
    codec = build_codec("simcc-random", INPUT, stride=4)
    a = codec.encode(keypoints(2, 9), generator=torch.Generator().manual_seed(3)).x_labels
    b = codec.encode(keypoints(2, 9), generator=torch.Generator().manual_seed(3)).x_labels
    assert torch.equal(a, b)


def test_randomized_labels_need_both_neighbours():
    codec = SimCC(INPUT, rounding="random", label="onehot")
    wx = codec.heatmap_size[0]
    uv = torch.tensor([[[0.0, 3.0], [wx - 1, 3.0], [-0.1, 3.0], [wx - 0.9, 3.0]]])
    assert codec.encode(codec.to_input(uv)).weights.tolist() == [[1.0, 1.0, 0.0, 0.0]]
    rounded = SimCC(INPUT, label="onehot")  # the rounded bin only: the image's extent
    assert rounded.encode(codec.to_input(uv)).weights.tolist() == [[1.0, 1.0, 1.0, 1.0]]


def test_simcc_bad_arguments_and_outputs_are_named():
    for ratio in (0, -1.0, "2"):
        with pytest.raises(ValueError, match="split_ratio must be a positive number"):
            SimCC(INPUT, split_ratio=ratio)
    with pytest.raises(ValueError, match="at least 2 per axis"):
        SimCC(INPUT, split_ratio=0.01)
    with pytest.raises(ValueError, match="sigma must be positive"):
        SimCC(INPUT, sigma=0)
    with pytest.raises(ValueError, match="label must be one of"):
        SimCC(INPUT, label="smooth")
    with pytest.raises(ValueError, match="rounding must be one of"):
        SimCC(INPUT, rounding="floor")
    with pytest.raises(ValueError, match="k must be an integer"):
        SimCC(INPUT, decoder="topk", k=0)
    codec = SimCC(INPUT)
    with pytest.raises(ValueError, match="decodes a pair"):
        codec.decode(torch.zeros(1, 2, 96, 128))
    with pytest.raises(ValueError, match=r"x_logits must have shape \(N, K, 128\)"):
        codec.decode((torch.zeros(1, 2, 127), torch.zeros(1, 2, 96)))


def test_simcc_degenerate_only_where_the_top_k_is_a_whole_axis():
    assert SimCC(INPUT, decoder="topk", k=96).degenerate().startswith("128×96 bins: the top 96 are every bin")
    assert SimCC(INPUT, decoder="topk", k=95).degenerate() is None
    assert SimCC(INPUT, k=96).degenerate() is None  # argmax reads no k


# --- RLE ----------------------------------------------------------------------------------------

def test_rle_normalises_by_the_image_and_decodes_the_mean():
    codec = build_codec("rle", INPUT, stride=4)
    kp = keypoints(3, 7)
    t = codec.encode(kp)
    assert t.heatmaps is None and t.weights.min() == 1
    assert (t.keypoints.abs() <= 0.5).all()  # the image spans [-1/2, 1/2] under "center"
    torch.testing.assert_close(t.keypoints, (kp + 0.5) / torch.tensor(INPUT) - 0.5)
    output = torch.cat([t.keypoints, torch.full_like(t.keypoints, -2.0)], -1)
    xy, scores = codec.decode(output)
    torch.testing.assert_close(xy, kp, atol=1e-4, rtol=0)
    torch.testing.assert_close(scores, torch.full((3, 7), 1 - torch.sigmoid(torch.tensor(-2.0)).item()))
    corner = RLE(INPUT, align="corner")  # mmpose's RegressionLabel: x / W
    torch.testing.assert_close(corner.encode(kp).keypoints, kp / torch.tensor(INPUT))
    with pytest.raises(ValueError, match=r"\(N, K, 4\)"):
        codec.decode(torch.zeros(3, 7, 2))


# --- local soft-argmax --------------------------------------------------------------------------

def test_local_soft_argmax_decodes_its_target_closely():
    codec = build_codec("local-soft-argmax", INPUT, heatmap_size=HEATMAP)
    kp = keypoints(4, 30, margin=3 * 4.0)  # the window on the grid
    t = codec.encode(kp)
    assert t.weights.min() == 1
    err = (codec.decode(t.heatmaps)[0] - kp).abs()
    assert err.max() < 0.02 * 4  # 0.02 cells
    narrow = LocalSoftArgmax(INPUT, HEATMAP, radius=1)
    argmax = Vanilla(INPUT, HEATMAP)
    narrow_err = (narrow.decode(t.heatmaps)[0] - kp).norm(dim=-1)
    argmax_err = (argmax.decode(t.heatmaps)[0] - kp).norm(dim=-1)
    assert narrow_err.max() < 0.15 * 4 * 2**0.5 and narrow_err.mean() < argmax_err.mean()


def test_local_soft_argmax_is_a_window_softmax_and_radius_0_is_argmax():
    heatmaps = torch.randn(2, 3, HEATMAP[1], HEATMAP[0])
    r0 = LocalSoftArgmax(INPUT, HEATMAP, radius=0).decode(heatmaps)
    argmax = Vanilla(INPUT, HEATMAP).decode(heatmaps)
    assert torch.equal(r0[0], argmax[0]) and torch.equal(r0[1], argmax[1])
    codec = LocalSoftArgmax(INPUT, HEATMAP, radius=1, beta=2.0)
    uv, _ = codec.decode_heatmap_units(heatmaps)
    for n in range(2):
        for k in range(3):
            m = heatmaps[n, k]
            y, x = divmod(int(m.argmax()), HEATMAP[0])
            ys, xs = torch.meshgrid(torch.arange(max(y - 1, 0), min(y + 2, HEATMAP[1])),
                                    torch.arange(max(x - 1, 0), min(x + 2, HEATMAP[0])), indexing="ij")
            w = (2.0 * m[ys, xs]).flatten().softmax(0)
            expected = torch.stack([(w * xs.flatten()).sum(), (w * ys.flatten()).sum()])
            torch.testing.assert_close(uv[n, k], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size, radius", [((16, 12), 2), ((4, 4), 2), ((3, 5), 3)])
def test_local_soft_argmax_reads_only_the_windows_cells_on_the_grid(size, radius):
    """Peaks in corners, on edges and inside, and windows larger than the map, against a softmax
    over the window's cells on the grid taken one keypoint at a time."""
    heatmaps = torch.randn(3, 8, size[1], size[0])
    corners = [(0, 0), (size[0] - 1, 0), (0, size[1] - 1), (size[0] - 1, size[1] - 1), (size[0] // 2, 0),
               (0, size[1] // 2)]
    for k, (x, y) in enumerate(corners):
        heatmaps[:, k, y, x] = 10.0
    codec = LocalSoftArgmax(4 * size[0], size, radius=radius, beta=3.0)
    uv, scores = codec.decode_heatmap_units(heatmaps)
    for n in range(3):
        for k in range(8):
            m = heatmaps[n, k]
            y, x = divmod(int(m.argmax()), size[0])
            ys, xs = torch.meshgrid(torch.arange(max(y - radius, 0), min(y + radius + 1, size[1])),
                                    torch.arange(max(x - radius, 0), min(x + radius + 1, size[0])), indexing="ij")
            w = (3.0 * m[ys, xs]).flatten().softmax(0)
            expected = torch.stack([(w * xs.flatten()).sum(), (w * ys.flatten()).sum()])
            torch.testing.assert_close(uv[n, k], expected, atol=1e-5, rtol=0)
            assert scores[n, k] == m.max()


def test_local_soft_argmax_arguments_and_degeneracy():
    for kwargs, match in (({"radius": -1}, "radius must be a non-negative integer"), ({"radius": 1.5}, "radius"),
                          ({"sigma": 0}, "sigma must be positive"), ({"beta": 0}, "beta must be positive")):
        with pytest.raises(ValueError, match=match):
            LocalSoftArgmax(INPUT, HEATMAP, **kwargs)
    assert LocalSoftArgmax(32, 4, radius=2).degenerate() is None
    assert LocalSoftArgmax(32, 4, radius=3).degenerate() == ("4×4 map: a window of 7×7 cells around any peak is "
                                                             "the whole map")
    assert build_codec("local-soft-argmax", 64, stride=4, sigma=1.5).sigma == 1.5
    # a Gaussian target like DARK's: on the exact point, masked off the heatmap's extent
    t = LocalSoftArgmax(INPUT, HEATMAP).encode(keypoints(2, 5))
    torch.testing.assert_close(t.heatmaps, gaussian_heatmaps(t.keypoints, HEATMAP, 2.0))
