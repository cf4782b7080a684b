"""Peer check: our decoders against mmpose 1.x's on the same heatmaps.

Conventions to mind (all checked below):

* mmpose's MSRA/DARK codecs map ``x = s u`` (our ``align="corner"``), so ours are built with it.
* The quarter shift: mmpose (after HRNet) moves x only where ``1 < x < W - 1 and 0 < y``, y
  likewise; ours moves an axis wherever the peak has both neighbours on it. They differ on peaks
  in the first two columns or rows and nowhere else.
* DARK: mmpose blurs with an 11-tap kernel for sigma 2 (cv2's ``sigma = 0.3 ((k - 1) / 2 - 1) +
  0.8``); with ``blur_kernel=11`` ours uses the same taps. Our default, 13 taps (+-3 sigma), moves
  points by up to ~0.01 px on these maps.
* UDP: mmpose's ``UDPHeatmap.decode`` returns ``u W / (Wh - 1)`` while its encode uses
  ``(W - 1) / (Wh - 1)``; ours uses the latter both ways, so results are compared in heatmap
  units. mmpose refines border peaks (edge padding) and floors the modulated map at 1e-3 before
  the log (ours at 1e-10); we keep the argmax on the border cell, so border peaks are left out.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mmpose.codecs", reason="mmpose is not installed (see the README for the peer check)")
from mmpose.codecs import MSRAHeatmap, UDPHeatmap  # noqa: E402

from h3r.codecs import DARK, UDP, ArgmaxQuarter  # noqa: E402
from h3r.codecs.base import argmax_2d  # noqa: E402

# mmpose 1.3.2 calls np.maximum(a, b, out) positionally, which numpy 2 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Passing more than 2 positional arguments:DeprecationWarning")

INPUT, HEATMAP = (256, 192), (64, 48)
SCALE = np.array(INPUT) / np.array(HEATMAP)


@pytest.fixture(scope="module")
def heatmaps() -> torch.Tensor:
    """Noisy Gaussian blobs of random width and height (N, K, Hh, Wh), peaks anywhere, borders too."""
    g = torch.Generator().manual_seed(0)
    n, k, (wh, hh) = 8, 17, HEATMAP
    centers = torch.rand(n, k, 2, generator=g) * torch.tensor([wh - 1.0, hh - 1.0])
    sigma = 1.5 + torch.rand(n, k, 1, 1, generator=g)
    dx2 = (torch.arange(wh) - centers[..., 0:1])[..., None, :] ** 2
    dy2 = (torch.arange(hh) - centers[..., 1:2])[..., :, None] ** 2
    blobs = torch.exp(-(dx2 + dy2) / (2 * sigma**2)) * (0.5 + torch.rand(n, k, 1, 1, generator=g))
    return blobs + 0.05 * torch.rand(n, k, hh, wh, generator=g)


def mmpose_decode(codec, heatmaps: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """mmpose decodes one instance (K, H, W) at a time; stack them to (N, K, 2), (N, K)."""
    out = [codec.decode(h) for h in heatmaps.numpy()]
    return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])


def test_quarter_matches_msra_heatmap(heatmaps):
    ours, our_scores = ArgmaxQuarter(INPUT, HEATMAP, align="corner").decode(heatmaps)
    theirs, scores = mmpose_decode(MSRAHeatmap(INPUT, HEATMAP, sigma=2, unbiased=False), heatmaps)
    np.testing.assert_allclose(our_scores.numpy(), scores)
    peaks = argmax_2d(heatmaps)[0].numpy()
    legacy = (peaks <= 1).any(-1)  # first two columns or rows, where mmpose's tests differ
    differ = np.abs(ours.numpy() - theirs).max(-1) > 1e-4
    assert legacy.sum() > 0  # the maps do reach those cells
    assert not (differ & ~legacy).any()
    np.testing.assert_allclose(ours.numpy()[~legacy], theirs[~legacy], atol=1e-4)
    # where they differ, it is by the quarter step (one stride / 4) on some axis
    np.testing.assert_allclose(np.abs(ours.numpy() - theirs)[differ].max(-1), SCALE[0] / 4, atol=1e-4)


def test_dark_matches_msra_heatmap_unbiased(heatmaps):
    theirs, scores = mmpose_decode(MSRAHeatmap(INPUT, HEATMAP, sigma=2, unbiased=True, blur_kernel_size=11),
                                   heatmaps)
    ours, our_scores = DARK(INPUT, HEATMAP, sigma=2, blur_kernel=11, align="corner").decode(heatmaps)
    np.testing.assert_allclose(our_scores.numpy(), scores)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-4)  # input px; borders included
    default, _ = DARK(INPUT, HEATMAP, sigma=2, align="corner").decode(heatmaps)
    assert np.abs(default.numpy() - theirs).max() < 0.05  # 13 taps instead of 11


def test_udp_matches_udp_heatmap_away_from_the_border(heatmaps):
    theirs, scores = mmpose_decode(UDPHeatmap(INPUT, HEATMAP, sigma=2, blur_kernel_size=11), heatmaps)
    codec = UDP(INPUT, HEATMAP, sigma=2, blur_kernel=11)
    uv, our_scores = codec.decode_heatmap_units(heatmaps)
    np.testing.assert_allclose(our_scores.numpy(), scores)
    their_uv = theirs / (np.array(INPUT) / (np.array(HEATMAP) - 1))  # undo mmpose's W / (Wh - 1)
    peaks = argmax_2d(heatmaps)[0].numpy()
    inside = ((peaks >= 1) & (peaks <= np.array(HEATMAP) - 2)).all(-1)
    assert inside.mean() > 0.8
    np.testing.assert_allclose(uv.numpy()[inside], their_uv[inside], atol=1e-5)
    # in input pixels mmpose's decode sits W / (W - 1) further from the origin than ours
    xy, _ = codec.decode(heatmaps)
    np.testing.assert_allclose(theirs[inside], xy.numpy()[inside] * np.array(INPUT) / (np.array(INPUT) - 1),
                               rtol=1e-5, atol=1e-3)


def test_udp_encoding_matches_udp_heatmap():
    """Encoders agree too where mmpose draws its whole 3-sigma window (it crops the Gaussian
    there; ours covers the grid)."""
    g = torch.Generator().manual_seed(1)
    kp = 30 + torch.rand(1, 17, 2, generator=g) * (torch.tensor(INPUT) - 61.0)
    theirs = UDPHeatmap(INPUT, HEATMAP, sigma=2).encode(kp.numpy(), np.ones((1, 17)))["heatmaps"]
    ours = UDP(INPUT, HEATMAP, sigma=2).encode(kp).heatmaps[0]
    window = theirs > 0
    np.testing.assert_allclose(ours.numpy()[window], theirs[window], atol=1e-5)
    assert ours.numpy()[~window].max() < np.exp(-4.5)  # beyond 3 sigma (on one axis)
