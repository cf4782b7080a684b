"""Peer check: SimCC, integral regression, DSNT's regulariser and RLE against mmpose 1.x.

Conventions to mind (all checked below):

* mmpose maps ``u = x r`` (SimCC) and ``u = x / W`` (regression labels): our ``align="corner"``.
* SimCC labels: mmpose rounds with ``np.around`` (half to even), ours ``floor(u + 1/2)``; they
  differ only on exact halves, which random keypoints do not hit. mmpose keeps a Gaussian label
  whose 3-sigma window touches the grid and marks ``score <= 0`` by the coordinate -1; neither
  case occurs here.
* Loss reductions: mmpose's ``KLDiscretLoss`` sums over samples and divides by K, ``RLELoss`` and
  ``JSDiscretLoss`` divide the sum by N; ours take the weighted mean over keypoints.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

pytest.importorskip("mmpose.codecs", reason="mmpose is not installed (see the README for the peer check)")
from mmpose.codecs import SimCCLabel  # noqa: E402

from h3r.codecs import SimCC, SoftArgmax  # noqa: E402
from h3r.losses import RealNVP, js_divergence, rle, simcc_kl  # noqa: E402
from tests.peer_stubs import stub_mmcv_ops  # noqa: E402

stub_mmcv_ops()  # mmcv-lite has no compiled ops; mmpose.models imports three it never calls here

# mmpose 1.3.2 calls np.maximum(a, b, out) positionally, which numpy 2 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Passing more than 2 positional arguments:DeprecationWarning")

INPUT, HEATMAP = (192, 256), (48, 64)
MODELS_MISSING = ("mmpose.models does not import here (it needs six, xtcocotools, mmdet and mmcv-lite<2.2: make peer "
                  "installs them)")
N, K = 4, 17


def keypoints(margin: float = 20.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return margin + torch.rand(N, K, 2, generator=g) * (torch.tensor(INPUT, dtype=torch.float32) - 2 * margin)


def losses_or_skip():
    return pytest.importorskip("mmpose.models.losses", reason=MODELS_MISSING)


@pytest.mark.parametrize("smoothing, label", [("standard", "onehot"), ("gaussian", "gaussian")])
def test_simcc_encoding_matches_simcc_label(smoothing, label):
    kp = keypoints()
    theirs = SimCCLabel(INPUT, smoothing_type=smoothing, sigma=6.0, simcc_split_ratio=2.0).encode(
        kp.numpy(), np.ones((N, K), dtype=np.float32))
    ours = SimCC(INPUT, label=label, sigma=6.0, split_ratio=2.0, align="corner").encode(kp)
    np.testing.assert_allclose(ours.x_labels.numpy(), theirs["keypoint_x_labels"], atol=1e-6)
    np.testing.assert_allclose(ours.y_labels.numpy(), theirs["keypoint_y_labels"], atol=1e-6)
    np.testing.assert_array_equal(ours.weights.numpy(), theirs["keypoint_weights"])


def test_simcc_decoding_matches_simcc_label():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(N, K, 384, generator=g), torch.rand(N, K, 512, generator=g)  # positive: no -1 marks
    theirs, scores = SimCCLabel(INPUT, simcc_split_ratio=2.0).decode(x.numpy(), y.numpy())
    ours, our_scores = SimCC(INPUT, split_ratio=2.0, align="corner").decode((x, y))
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-5)
    np.testing.assert_allclose(our_scores.numpy(), scores)


def test_simcc_kl_matches_kl_discret_loss():
    KLDiscretLoss = losses_or_skip().KLDiscretLoss
    codec = SimCC(INPUT, split_ratio=2.0, align="corner")
    target = codec.encode(keypoints())
    target.weights[0, :3] = 0  # masked keypoints count for nothing in either
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(N, K, 384, generator=g), torch.randn(N, K, 512, generator=g)
    for options in ({}, {"beta": 10.0, "label_softmax": True}):
        theirs = KLDiscretLoss(use_target_weight=True, **options)((x, y), (target.x_labels, target.y_labels),
                                                                  target.weights)
        ours = simcc_kl((x, y), target, **options)
        torch.testing.assert_close(ours * target.weights.sum() / K, theirs, rtol=1e-5, atol=1e-6)


def test_soft_argmax_matches_integral_regression_head():
    heads = pytest.importorskip("mmpose.models.heads", reason=MODELS_MISSING)
    head = heads.IntegralRegressionHead(in_channels=K, in_featuremap_size=HEATMAP, num_joints=K,
                                        deconv_out_channels=None, final_layer=None)  # the maps as they come
    maps = torch.randn(N, K, HEATMAP[1], HEATMAP[0], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs, _ = head((maps,))  # (N, K, 2): x / W
    ours, _ = SoftArgmax(INPUT, HEATMAP, align="corner").decode(maps)
    torch.testing.assert_close(ours / torch.tensor(INPUT), theirs, atol=1e-5, rtol=0)


def test_dsnt_regulariser_matches_js_discret_loss():
    JSDiscretLoss = losses_or_skip().JSDiscretLoss
    g = torch.Generator().manual_seed(4)
    p = torch.randn(N, K, 16, 12, generator=g).flatten(2).softmax(-1)
    q = torch.randn(N, K, 16, 12, generator=g).flatten(2).softmax(-1)
    theirs = JSDiscretLoss(use_target_weight=True)(p.view(N, K, 16, 12), q.view(N, K, 16, 12), torch.ones(N, K))
    torch.testing.assert_close(js_divergence(p, q).sum() / N, theirs, rtol=1e-5, atol=1e-6)


def test_rle_matches_rle_loss_with_the_same_flow():
    RLELoss = losses_or_skip().RLELoss
    torch.manual_seed(5)
    theirs_loss = RLELoss(use_target_weight=True)
    flow = RealNVP()
    for m in flow.modules():  # away from the identity, so that the flow matters
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.2)
    theirs_loss.flow_model.load_state_dict(flow.state_dict(), strict=False)  # theirs adds loc and cov buffers
    target = torch.rand(N, K, 2)  # mmpose's normalised coordinates
    weights = (torch.rand(N, K) > 0.2).float()
    output = torch.cat([target + 0.1 * torch.randn(N, K, 2), torch.randn(N, K, 2)], dim=-1)
    if "sigma" in inspect.signature(theirs_loss.forward).parameters:
        theirs = theirs_loss(output[..., :2], output[..., 2:], target, weights[..., None])
    else:  # mmpose before 1.0: the (N, K, 4) output at once
        theirs = theirs_loss(output, target, weights[..., None])
    from h3r.codecs import Target

    ours = rle(output, Target(None, target, weights), flow=flow)
    torch.testing.assert_close(ours * weights.sum() / N, theirs, rtol=1e-5, atol=1e-5)
