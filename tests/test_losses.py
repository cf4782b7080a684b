"""Losses: hand-computable values, masking, shape errors, the registry, bf16 autocast."""
from __future__ import annotations

import math

import pytest
import torch

from h3r.codecs import H3R, Target, Vanilla
from h3r.config import BINARY_LOSSES
from h3r.losses import (LOSSES, RealNVP, binary_ce, build_loss, l1_coords, mse, sigmoid_ce, spatial_ce,
                        weighted_mean)

N, K, H, W = 2, 3, 4, 5


def onehot_target(cells: list[tuple[int, int]] | None = None, weights=None) -> Target:
    """One-hot targets (N, K, H, W) at cells (x, y), the same for every sample, with the per-axis
    one-hot labels (N, K, W), (N, K, H) of the same cells."""
    cells = cells or [(0, 0), (4, 3), (2, 1)]
    heatmaps = torch.zeros(N, K, H, W)
    for k, (x, y) in enumerate(cells):
        heatmaps[:, k, y, x] = 1
    keypoints = torch.tensor(cells, dtype=torch.float32).expand(N, K, 2).clone()
    weights = torch.ones(N, K) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    return Target(heatmaps, keypoints, weights, heatmaps.sum(-2), heatmaps.sum(-1))


def loss_of(name: str):
    """The loss called ``name``, with a flow where it needs one."""
    return build_loss(name, flow=RealNVP()) if name == "rle" else LOSSES[name]


def output_of(name: str, make=torch.randn):
    """An output of the head ``name`` trains, from ``make(*shape)``: a tensor, or SimCC's pair."""
    if name in BINARY_LOSSES:
        return make(N, 2, K, H, W)
    if name == "simcc_kl":
        return make(N, K, W), make(N, K, H)
    if name == "rle":
        return make(N, K, 4)
    return make(N, K, H, W)


def per_keypoint(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """A gradient of ``output_of(name)``'s shape with K second: (N, K, ...)."""
    return tensor.transpose(1, 2) if name in BINARY_LOSSES else tensor


# --- hand-computable values ------------------------------------------------------------------------

def test_mse_is_zero_for_a_perfect_prediction_and_one_over_cells_for_a_missed_peak():
    target = onehot_target()
    assert mse(target.heatmaps.clone(), target) == 0
    assert torch.isclose(mse(torch.zeros(N, K, H, W), target), torch.tensor(1 / (H * W)))


def test_spatial_ce_of_uniform_logits_is_log_of_the_cell_count():
    assert torch.isclose(spatial_ce(torch.zeros(N, K, H, W), onehot_target()), torch.tensor(math.log(H * W)))
    soft = Target(torch.rand(N, K, H, W), torch.zeros(N, K, 2), torch.ones(N, K))
    assert torch.isclose(spatial_ce(torch.full((N, K, H, W), 7.0), soft), torch.tensor(math.log(H * W)))


def test_spatial_ce_of_a_one_hot_target_is_minus_log_p_of_its_cell():
    target = onehot_target()
    logits = torch.randn(N, K, H, W)
    log_p = logits.flatten(2).log_softmax(-1).view(N, K, H, W)
    cells = [(0, 0), (4, 3), (2, 1)]
    expected = -torch.stack([log_p[:, k, y, x] for k, (x, y) in enumerate(cells)], 1).mean()
    assert torch.isclose(spatial_ce(logits, target), expected)


def test_spatial_ce_normalises_soft_targets():
    logits = torch.randn(N, K, H, W)
    heatmaps = torch.rand(N, K, H, W)
    a = spatial_ce(logits, Target(heatmaps, torch.zeros(N, K, 2), torch.ones(N, K)))
    b = spatial_ce(logits, Target(3 * heatmaps, torch.zeros(N, K, 2), torch.ones(N, K)))
    assert torch.isclose(a, b)


def test_binary_ce_at_even_odds_and_with_pos_weight():
    target = onehot_target()
    output = torch.zeros(N, 2, K, H, W)  # p(foreground) = 1/2 everywhere
    assert torch.isclose(binary_ce(output, target, prior=0.0), torch.tensor(math.log(2)))
    # one foreground cell of H*W carries weight 10 instead of 1
    expected = math.log(2) * (H * W - 1 + 10) / (H * W)
    assert torch.isclose(binary_ce(output, target, pos_weight=10.0, prior=0.0), torch.tensor(expected))


def test_sigmoid_ce_is_torchs_binary_cross_entropy_with_logits_per_cell():
    target = onehot_target()
    logits = torch.randn(N, K, H, W)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert torch.isclose(sigmoid_ce(logits, target), bce(logits, target.heatmaps), atol=1e-6)
    balanced = bce(logits, target.heatmaps, pos_weight=torch.tensor(H * W - 1.0))
    assert torch.isclose(sigmoid_ce(logits, target, pos_weight="balanced"), balanced, atol=1e-6)
    # a two-channel head whose background logit is 0 is a one-channel head
    two = torch.stack([torch.zeros_like(logits), logits], dim=1)
    for options in ({}, {"pos_weight": 7.0, "gamma": 2.0}, {"prior": "auto"}):
        assert torch.isclose(sigmoid_ce(logits, target, **options), binary_ce(two, target, **{"prior": 0.0, **options}))


def test_sigmoid_ce_focal_discounts_the_cells_already_right():
    target = onehot_target()
    confident = 8 * (2 * target.heatmaps - 1)  # every cell classified right, with margin
    assert sigmoid_ce(confident, target, gamma=2.0) < 1e-3 * sigmoid_ce(confident, target)
    for bad in ({"pos_weight": 0.0}, {"pos_weight": "even"}, {"gamma": -1.0}, {"prior": "none"}):
        with pytest.raises(ValueError):
            sigmoid_ce(confident, target, **bad)


def test_binary_ce_is_the_two_class_cross_entropy_per_cell():
    target = onehot_target()
    output = torch.randn(N, 2, K, H, W)
    labels = target.heatmaps.long()  # 1 = foreground
    reference = torch.nn.functional.cross_entropy(output, labels)  # mean over N, K, H, W cells
    assert torch.isclose(binary_ce(output, target, prior=0.0), reference, atol=1e-6)


def test_l1_coords_of_uniform_logits_is_the_distance_from_the_grid_centre():
    target = onehot_target(cells=[(0, 0), (0, 0), (0, 0)])
    expected = (W - 1) / 2 + (H - 1) / 2  # the soft-argmax of a flat map is the centre
    assert torch.isclose(l1_coords(torch.zeros(N, K, H, W), target), torch.tensor(expected))


def test_l1_coords_takes_any_coordinate_function():
    target = onehot_target()
    loss = l1_coords(torch.zeros(N, K, H, W), target, coords_fn=lambda h: target.keypoints + 0.5)
    assert torch.isclose(loss, torch.tensor(1.0))


def test_l1_coords_beta_sharpens_towards_the_argmax():
    target = onehot_target()
    logits = 5 * target.heatmaps  # peaks at the targets
    assert l1_coords(logits, target, beta=10.0) < 1e-3 < l1_coords(logits, target, beta=0.1)


# --- masking ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LOSSES))
def test_masked_keypoints_contribute_nothing_even_when_nan(name):
    weights = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    target = onehot_target(weights=weights)
    output = output_of(name, lambda *shape: torch.randn(*shape).requires_grad_(True))
    fn = loss_of(name)
    clean = fn(output, target)
    poisoned = Target(*(t.clone() for t in (target.heatmaps, target.keypoints)), weights,
                      *(t.clone() for t in (target.x_labels, target.y_labels)))
    for field in (poisoned.heatmaps, poisoned.keypoints, poisoned.x_labels, poisoned.y_labels):
        field[weights == 0] = float("nan")
    loss = fn(output, poisoned)
    assert torch.isclose(loss, clean)
    loss.backward()
    for leaf in output if isinstance(output, tuple) else (output,):
        grad = per_keypoint(name, leaf.grad)
        assert torch.isfinite(grad).all()
        assert (grad[weights == 0] == 0).all() and (grad[weights > 0] != 0).any()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_all_zero_weights_give_zero_not_nan(name):
    target = onehot_target(weights=torch.zeros(N, K))
    output = output_of(name, lambda *shape: torch.randn(*shape).requires_grad_(True))
    loss = loss_of(name)(output, target)
    assert loss == 0
    loss.backward()
    assert all((leaf.grad == 0).all() for leaf in (output if isinstance(output, tuple) else (output,)))


def test_weighted_mean_uses_the_weights():
    losses = torch.tensor([[1.0, 2.0], [3.0, float("nan")]])
    weights = torch.tensor([[1.0, 0.5], [2.0, 0.0]])
    assert torch.isclose(weighted_mean(losses, weights), torch.tensor((1 + 1 + 6) / 3.5))


# --- with a real codec and a real network's precision ------------------------------------------------

def test_mse_on_a_codec_target():
    codec = Vanilla((64, 64), (16, 16), target="gaussian", sigma=1.5)
    keypoints = torch.tensor([[[10.0, 20.0], [30.0, 33.0], [-50.0, 5.0]]])  # the last is off the image
    target = codec.encode(keypoints)
    assert target.weights.tolist() == [[1.0, 1.0, 0.0]]
    assert mse(target.heatmaps.clone(), target) == 0
    assert mse(torch.zeros(1, 3, 16, 16), target) > 0


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_are_finite_under_bf16_autocast(name):
    binary = name in BINARY_LOSSES
    conv = torch.nn.Conv2d(4, 2 * K if binary else K, 1)
    target = onehot_target()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(torch.randn(N, 4, H, W))
        assert out.dtype == torch.bfloat16
        if binary:
            out = out.view(N, 2, K, H, W)
        elif name == "simcc_kl":
            out = out.sum(-2), out.sum(-1)
        elif name == "rle":
            out = out.flatten(2)[..., :4]
        loss = loss_of(name)(out, target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(conv.weight.grad).all() and conv.weight.grad.abs().sum() > 0


# --- errors and the registry ----------------------------------------------------------------------------

def test_wrong_inputs_are_explained():
    target = onehot_target()
    with pytest.raises(ValueError, match="binary_scores"):
        mse(torch.zeros(N, 2, K, H, W), target)
    with pytest.raises(ValueError, match="head='binary'"):
        binary_ce(torch.zeros(N, K, H, W), target)
    with pytest.raises(ValueError, match="heatmap_size"):
        spatial_ce(torch.zeros(N, K, H + 1, W), target)
    with pytest.raises(ValueError, match="l1_coords"):
        mse(torch.zeros(N, K, H, W), Target(None, target.keypoints, target.weights))
    with pytest.raises(ValueError, match="pos_weight"):
        binary_ce(torch.zeros(N, 2, K, H, W), target, pos_weight=0)


def test_build_loss_binds_options_and_rejects_unknown_ones():
    target = onehot_target()
    output = torch.zeros(N, 2, K, H, W)
    assert torch.equal(build_loss("binary_ce", pos_weight=10.0)(output, target),
                       binary_ce(output, target, pos_weight=10.0))
    assert build_loss("mse")(target.heatmaps, target) == 0
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("focal")
    with pytest.raises(TypeError, match="pos_weight"):
        build_loss("mse", pos_weight=2.0)


def test_binary_ce_options_and_the_foreground_loss():
    from h3r.losses import binary_ce, foreground_ce, spatial_ce

    g = torch.Generator().manual_seed(0)
    output = torch.randn(2, 2, 3, 8, 8, generator=g)
    codec = H3R(32, 8)
    target = codec.encode(4 + 24 * torch.rand(2, 3, 2, generator=g), generator=g)
    plain = binary_ce(output, target, prior=0.0)
    # the plain loss is the per-cell two-class cross-entropy
    log_p = output.log_softmax(dim=1)
    y = target.heatmaps
    manual = -(y * log_p[:, 1] + (1 - y) * log_p[:, 0]).mean(dim=(-2, -1)).mean()
    torch.testing.assert_close(plain, manual)
    # a prior is a constant on the foreground-minus-background logit
    shifted = output.clone()
    shifted[:, 1] += -4.0
    torch.testing.assert_close(binary_ce(output, target, prior=-4.0), binary_ce(shifted, target, prior=0.0))
    torch.testing.assert_close(binary_ce(output, target), binary_ce(output, target, prior=-math.log(64)))  # auto
    # the focal factor only discounts: never more than the plain loss
    assert binary_ce(output, target, gamma=2.0, prior=0.0) < plain
    assert binary_ce(output, target, pos_weight=64.0, prior=0.0) > plain
    torch.testing.assert_close(foreground_ce(output, target), spatial_ce(output[:, 1], target))
    with pytest.raises(ValueError, match="gamma"):
        binary_ce(output, target, gamma=-1.0)
    with pytest.raises(ValueError, match="binary head"):
        foreground_ce(output[:, 1], target)


def test_the_bilinear_target_is_the_expectation_of_the_draws():
    codec = H3R(32, 8, target="bilinear")
    keypoints = 4 + 24 * torch.rand(2, 3, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(codec.encode(keypoints).heatmaps, H3R(32, 8).expected_target(keypoints).heatmaps)


# --- SimCC, DSNT, RLE -------------------------------------------------------------------------------

def test_simcc_kl_of_uniform_logits_is_log_of_the_bins_over_the_bins():
    """KL(one-hot || uniform) = log B, averaged over the B bins as mmpose's KLDiscretLoss does."""
    from h3r.losses import simcc_kl

    expected = math.log(W) / W + math.log(H) / H
    uniform = (torch.zeros(N, K, W), torch.zeros(N, K, H))
    assert torch.isclose(simcc_kl(uniform, onehot_target()), torch.tensor(expected))
    target = onehot_target()
    logits = (10 * target.x_labels, 10 * target.y_labels)
    assert simcc_kl(logits, target) < simcc_kl(logits, target, beta=0.1)  # beta sharpens the prediction
    # label_softmax: q = softmax(label_beta * label), a smoothed one-hot; KL(q || uniform) = sum q log(B q)
    kl = [((10.0 * labels).softmax(-1) * ((10.0 * labels).log_softmax(-1) + math.log(labels.shape[-1]))).mean(-1)
          for labels in (target.x_labels, target.y_labels)]
    torch.testing.assert_close(simcc_kl(uniform, target, label_softmax=True), (kl[0] + kl[1]).mean())
    # summed over the bins: a cross-entropy's scale, log W + log H for a one-hot against uniform
    assert torch.isclose(simcc_kl(uniform, target, bins="sum"), torch.tensor(math.log(W) + math.log(H)))


def test_simcc_kl_explains_wrong_inputs():
    from h3r.losses import simcc_kl

    target = onehot_target()
    with pytest.raises(ValueError, match="bins must be 'mean'"):
        simcc_kl((torch.zeros(N, K, W), torch.zeros(N, K, H)), target, bins="max")
    with pytest.raises(ValueError, match="head='simcc'"):
        simcc_kl(torch.zeros(N, K, H, W), target)
    with pytest.raises(ValueError, match="x_labels, y_labels"):
        simcc_kl((torch.zeros(N, K, W), torch.zeros(N, K, H)), Target(None, target.keypoints, target.weights))
    with pytest.raises(ValueError, match="same input size and split ratio"):
        simcc_kl((torch.zeros(N, K, W + 1), torch.zeros(N, K, H)), target)


def test_dsnt_is_l1_plus_the_js_divergence_to_a_gaussian():
    from h3r.codecs.base import gaussian_heatmaps
    from h3r.losses import dsnt, js_divergence

    target = onehot_target(cells=[(2, 1), (1, 2), (3, 2)])
    logits = torch.randn(N, K, H, W)
    torch.testing.assert_close(dsnt(logits, target, js_weight=0.0), l1_coords(logits, target))
    g = gaussian_heatmaps(target.keypoints, (W, H), 1.0).flatten(2)
    g = g / g.sum(-1, keepdim=True)
    p = logits.flatten(2).softmax(-1)
    torch.testing.assert_close(dsnt(logits, target), l1_coords(logits, target) + js_divergence(p, g).mean())
    # JS is symmetric, 0 on equal distributions, at most log 2 (disjoint ones)
    torch.testing.assert_close(js_divergence(p, g), js_divergence(g, p))
    assert js_divergence(g, g).abs().max() < 1e-6
    assert torch.isclose(js_divergence(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])), torch.tensor(math.log(2)))
    with pytest.raises(ValueError, match="sigma"):
        dsnt(logits, target, sigma=0)


def test_realnvp_inverts_and_its_log_det_is_the_jacobian_s():
    torch.manual_seed(0)
    flow = RealNVP()
    for m in flow.modules():  # far from the identity it starts at
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.2)
            torch.nn.init.normal_(m.bias, std=0.2)
    x = torch.randn(5, 2, dtype=torch.float64)
    flow = flow.double()
    z, log_det = flow.inverse(x)
    assert 0.1 < (z - x).abs().max() < 100  # a real transformation
    torch.testing.assert_close(flow(z), x)
    for i in range(len(x)):
        jacobian = torch.autograd.functional.jacobian(lambda v: flow.inverse(v[None])[0][0], x[i])
        torch.testing.assert_close(log_det[i], torch.linalg.det(jacobian).abs().log())
    normal = torch.distributions.MultivariateNormal(torch.zeros(2).double(), torch.eye(2).double())
    torch.testing.assert_close(flow.log_prob(x), normal.log_prob(z) + log_det)


@pytest.mark.parametrize("q_dis", ["laplace", "gaussian"])
def test_rle_is_the_residual_log_likelihood(q_dis):
    from h3r.losses import rle

    torch.manual_seed(0)
    flow = RealNVP()
    target = onehot_target(weights=torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.5, 1.0]]))
    output = torch.randn(N, K, 4, requires_grad=True)
    sigma = output[..., 2:].sigmoid()
    e = (output[..., :2] - target.keypoints) / (sigma + 1e-9)
    log_phi = flow.log_prob(e.reshape(-1, 2)).reshape(N, K, 1)
    q = (2 * sigma).log() + e.abs() if q_dis == "laplace" else (math.sqrt(2 * math.pi) * sigma).log() + e**2 / 2
    per_keypoint = (sigma.log() - log_phi + q).sum(-1)
    w = target.weights
    expected = (w * per_keypoint)[w > 0].sum() / w.sum()
    loss = rle(output, target, flow=flow, q_dis=q_dis)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(rle(output, target, flow=flow, residual=False),
                               weighted_mean((sigma.log() - log_phi).sum(-1), w))
    loss.backward()  # into the network's output and the flow
    assert output.grad.abs().sum() > 0 and all(p.grad is not None for p in flow.parameters())
    with pytest.raises(ValueError, match="flow"):
        rle(output, target)
    with pytest.raises(ValueError, match="q_dis"):
        rle(output, target, flow=flow, q_dis="cauchy")
    with pytest.raises(ValueError, match="head='regression'"):
        rle(torch.zeros(N, K, H, W), target, flow=flow)
