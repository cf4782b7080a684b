"""h3r.integrations.mmpose against mmpose 1.x's codec and loss contracts, and against h3r itself.

Needs mmpose (``make peer``, or ``PYTHONPATH`` pointing at a ``pip install --target`` of it);
skipped otherwise. The ImportError raised without mmpose is tested in test_mmpose_missing.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mmpose.codecs", reason="mmpose is not installed (see the Makefile's peer target)")
from mmpose.codecs.base import BaseKeypointCodec  # noqa: E402
from mmpose.registry import KEYPOINT_CODECS, MODELS  # noqa: E402

from h3r.codecs import H3R  # noqa: E402
from h3r.codecs.base import Target  # noqa: E402
from h3r.integrations.mmpose import H3RHeatmap, H3RSpatialCELoss  # noqa: E402
from h3r.losses import spatial_ce  # noqa: E402

INPUT, HEATMAP = (192, 256), (48, 64)  # mmpose's (w, h) for a 256x192 top-down crop
STRIDE = 4.0
K = 17


def keypoints(seed: int = 0, n: int = 1) -> np.ndarray:
    """(n, K, 2) float64 input pixels, all representable under both alignments."""
    rng = np.random.default_rng(seed)
    return rng.uniform(2.0, np.array(INPUT) - 6.0, size=(n, K, 2))


def config(**overrides) -> dict:
    return dict(type="H3RHeatmap", input_size=INPUT, heatmap_size=HEATMAP, **overrides)


def test_builds_from_a_config_through_the_registry():
    codec = KEYPOINT_CODECS.build(config(seed=3, k=4, align="center"))
    assert isinstance(codec, H3RHeatmap) and isinstance(codec, BaseKeypointCodec)
    assert (codec.codec.k, codec.codec.align, codec.seed) == (4, "center", 3)
    assert codec.support_batch_decoding  # mmpose's heads then call batch_decode on the whole output
    assert KEYPOINT_CODECS.build(config()).codec.align == "corner"  # mmpose's MSRA convention
    assert MODELS.module_dict["H3RSpatialCELoss"] is H3RSpatialCELoss
    with pytest.raises(ValueError, match="weighting"):
        KEYPOINT_CODECS.build(config(weighting="argmax"))


def test_loss_builds_through_mmpose_models_registry():
    # MODELS.build first imports mmpose.models, which imports mmpose.datasets and xtcocotools
    from tests.peer_stubs import stub_mmcv_ops

    stub_mmcv_ops()  # mmcv-lite has no compiled ops; mmpose.models imports three it never calls here
    try:
        import mmpose.models  # noqa: F401
    except Exception as error:  # noqa: BLE001 - a missing xtcocotools/six, or numpy 2 against its wheel
        pytest.skip(f"mmpose.models does not import here: {error!r}")
    loss = MODELS.build(dict(type="H3RSpatialCELoss", loss_weight=2.0))
    assert isinstance(loss, H3RSpatialCELoss) and loss.loss_weight == 2.0


def test_encode_and_decode_have_mmposes_shapes_and_dtypes():
    codec = H3RHeatmap(INPUT, HEATMAP, seed=0)
    encoded = codec.encode(keypoints().astype(np.float32), np.ones((1, K), dtype=np.float32))
    assert set(encoded) == {"heatmaps", "keypoint_weights"}
    assert encoded["heatmaps"].shape == (K, HEATMAP[1], HEATMAP[0]) and encoded["heatmaps"].dtype == np.float32
    assert encoded["keypoint_weights"].shape == (1, K) and encoded["keypoint_weights"].dtype == np.float32
    assert (encoded["heatmaps"].reshape(K, -1).sum(-1) == 1).all()  # one-hot: one activated cell
    assert (encoded["heatmaps"].max(axis=(1, 2)) == 1).all()
    decoded, scores = codec.decode(encoded["heatmaps"])
    assert decoded.shape == (1, K, 2) and decoded.dtype == np.float32
    assert scores.shape == (1, K) and scores.dtype == np.float32
    assert codec.encode(keypoints())["keypoint_weights"].dtype == np.float32  # float64 in, no visibility
    with pytest.raises(ValueError, match="one instance"):
        codec.encode(keypoints(n=2))
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        codec.decode(encoded["heatmaps"][None])


@pytest.mark.parametrize("align", ["corner", "center"])
def test_round_trip(align):
    """A draw decodes to one of the 4 rounding neighbours (within a stride on each axis), and the
    expected target decodes to the keypoint exactly: lossless in expectation."""
    kp = keypoints(1)
    codec = H3RHeatmap(INPUT, HEATMAP, weighting="normalized", align=align, seed=1)
    h3r = H3R(INPUT, HEATMAP, align=align)
    neighbours = h3r.to_input(h3r.to_heatmap(torch.from_numpy(kp).float()).floor()).numpy()  # lower one
    decoded, scores = codec.decode(codec.encode(kp)["heatmaps"])
    offset = (decoded - neighbours) / STRIDE  # 0 or 1 cell on each axis
    np.testing.assert_allclose(offset, np.round(offset), atol=1e-5)
    assert set(np.round(offset).ravel()) <= {0.0, 1.0}
    np.testing.assert_array_equal(scores, 1.0)
    expected = H3RHeatmap(INPUT, HEATMAP, weighting="normalized", align=align, randomize=False)
    np.testing.assert_allclose(expected.decode(expected.encode(kp)["heatmaps"])[0], kp, atol=1e-3)
    draws = np.mean([codec.encode(kp)["heatmaps"] for _ in range(400)], axis=0)
    # the mean of 400 draws: per-axis standard error <= STRIDE * 0.5 / 20 = 0.1 px
    np.testing.assert_allclose(expected.decode(draws)[0], kp, atol=0.5)
    # the default decoder (softmax, for logits) recovers probabilities given their log
    logits = h3r.scores_from_probabilities(torch.from_numpy(draws)).numpy()
    np.testing.assert_allclose(H3RHeatmap(INPUT, HEATMAP, align=align).decode(logits)[0],
                               expected.decode(draws)[0], atol=1e-3)


@pytest.mark.parametrize("align", ["corner", "center"])
@pytest.mark.parametrize("target", ["onehot", "gaussian"])
def test_agrees_with_h3r_codec(align, target):
    kp = keypoints(2)
    visible = np.ones((1, K), dtype=np.float32)
    visible[0, 5] = 0
    codec = KEYPOINT_CODECS.build(config(align=align, target=target, seed=7))
    ours = H3R(INPUT, HEATMAP, target=target, align=align)
    generator = torch.Generator().manual_seed(7)
    for _ in range(3):  # the same stream, draw after draw
        encoded = codec.encode(kp, visible)
        reference = ours.encode(torch.from_numpy(kp).float(), torch.from_numpy(visible), generator=generator)
        np.testing.assert_array_equal(encoded["heatmaps"], reference.heatmaps[0].numpy())
        np.testing.assert_array_equal(encoded["keypoint_weights"], reference.weights.numpy())
    expected = codec.codec.expected_target(torch.from_numpy(kp).float())
    no_draw = KEYPOINT_CODECS.build(config(align=align, target=target, randomize=False)).encode(kp)
    np.testing.assert_array_equal(no_draw["heatmaps"], expected.heatmaps[0].numpy())
    # decoding: one instance, and the batch the head hands over, equal h3r's decode
    logits = torch.randn(4, K, HEATMAP[1], HEATMAP[0])
    reference_kp, reference_scores = ours.decode(logits)
    for i, heatmaps in enumerate(logits.numpy()):
        decoded, scores = codec.decode(heatmaps)
        np.testing.assert_array_equal(decoded[0], reference_kp[i].numpy())
        np.testing.assert_array_equal(scores[0], reference_scores[i].numpy())
    batch_kp, batch_scores = codec.batch_decode(logits)
    assert len(batch_kp) == 4 and batch_kp[0].shape == (1, K, 2) and batch_scores[0].shape == (1, K)
    np.testing.assert_array_equal(np.concatenate(batch_kp), reference_kp.numpy())
    np.testing.assert_array_equal(np.concatenate(batch_scores), reference_scores.numpy())


def test_corner_is_msra_heatmaps_convention():
    """On keypoints at cell centres of the ``x = s u`` grid, H3R has no fraction to round and
    MSRAHeatmap's Gaussian peaks at the same cell; both decode to the same point."""
    from mmpose.codecs import MSRAHeatmap

    cells = np.random.default_rng(3).integers(1, np.array(HEATMAP) - 2, size=(1, K, 2))
    kp = cells * STRIDE
    ours = H3RHeatmap(INPUT, HEATMAP, seed=0).encode(kp)["heatmaps"]
    msra = MSRAHeatmap(INPUT, HEATMAP, sigma=2).encode(kp)["heatmaps"]
    np.testing.assert_array_equal(ours.reshape(K, -1).argmax(-1), msra.reshape(K, -1).argmax(-1))
    np.testing.assert_allclose(H3RHeatmap(INPUT, HEATMAP).decode(msra)[0], kp, atol=1e-3)
    # "center" puts the same keypoints (s - 1) / 2 px off the cell centres: fraction 3/8 at stride 4
    center = H3RHeatmap(INPUT, HEATMAP, align="center", randomize=False).encode(kp)["heatmaps"]
    assert (center.reshape(K, -1) > 0).sum(-1).min() == 4


def test_invisible_and_unrepresentable_keypoints_get_weight_zero():
    kp = keypoints(4)
    kp[0, 1] = (189.0, 100.0)  # past s (Wh - 1) = 188: not representable under "corner"
    kp[0, 2] = (-3.0, 50.0)  # off the image
    kp[0, 3] = (np.nan, np.nan)  # invisible, so its NaN is never read
    visible = np.ones((1, K), dtype=np.float32)
    visible[0, 3] = 0
    visible[0, 4] = 0.4  # below mmpose's 0.5 threshold
    visible[0, 6] = 0.8  # visible, weighted 0.8 as mmpose's codecs copy the visibility
    encoded = H3RHeatmap(INPUT, HEATMAP, seed=0).encode(kp, visible)
    weights = encoded["keypoint_weights"][0]
    masked = [1, 2, 3, 4]
    np.testing.assert_array_equal(weights[masked], 0)
    np.testing.assert_array_equal(encoded["heatmaps"][masked], 0)
    assert weights[6] == np.float32(0.8)
    others = np.setdiff1d(np.arange(K), masked + [6])
    np.testing.assert_array_equal(weights[others], 1)
    # "center" represents x = 189 (cell 46.875) but not 190.5 (cell 47.25 > Wh - 1)
    center = H3RHeatmap(INPUT, HEATMAP, align="center")
    assert center.encode(kp, visible)["keypoint_weights"][0, 1] == 1
    kp[0, 1, 0] = 190.5
    assert center.encode(kp, visible)["keypoint_weights"][0, 1] == 0
    with pytest.raises(ValueError, match="marked visible"):
        H3RHeatmap(INPUT, HEATMAP).encode(kp)  # keypoint 3's NaN, now visible


def test_seeds_reproduce_draws():
    kp = keypoints(5)

    def draws(codec, n=4):
        return np.stack([codec.encode(kp)["heatmaps"] for _ in range(n)])

    first = draws(H3RHeatmap(INPUT, HEATMAP, seed=11))
    np.testing.assert_array_equal(first, draws(H3RHeatmap(INPUT, HEATMAP, seed=11)))
    assert not np.array_equal(first, draws(H3RHeatmap(INPUT, HEATMAP, seed=12)))
    assert not np.array_equal(first[0], first[1])  # the stream moves on
    # seed=None: torch's global generator, reproducible when torch is seeded
    torch.manual_seed(5)
    unseeded = draws(H3RHeatmap(INPUT, HEATMAP))
    torch.manual_seed(5)
    np.testing.assert_array_equal(unseeded, draws(H3RHeatmap(INPUT, HEATMAP)))
    with pytest.raises(ValueError, match="seed"):
        H3RHeatmap(INPUT, HEATMAP, seed=-1)


class _Encoded(torch.utils.data.Dataset):
    """Every item is the same keypoints, encoded by the dataset's codec."""

    def __init__(self, codec: H3RHeatmap, length: int):
        self.codec, self.length, self.kp = codec, length, keypoints(6)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return torch.from_numpy(self.codec.encode(self.kp)["heatmaps"])


def test_dataloader_workers_draw_independent_reproducible_streams():
    codec = H3RHeatmap(INPUT, HEATMAP, seed=0)

    def epoch(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)  # what mmengine's randomness=dict(seed=...) does
        loader = torch.utils.data.DataLoader(_Encoded(codec, 8), batch_size=4, num_workers=2)
        return torch.cat(list(loader))  # worker 0 encodes items 0-3, worker 1 items 4-7

    first = epoch(0)
    assert not torch.equal(first[:4], first[4:])  # the two workers' copies do not repeat each other
    assert torch.equal(first, epoch(0))  # reproducible from the run's seed
    assert not torch.equal(first, epoch(1))
    assert codec._owner is None  # the main process's generator is untouched


def test_loss_equals_spatial_ce():
    g = torch.Generator().manual_seed(0)
    b, (w, h) = 3, HEATMAP
    output = torch.randn(b, K, h, w, generator=g, requires_grad=True)
    kp = torch.from_numpy(keypoints(7, n=b)).float()
    target = H3R(INPUT, HEATMAP, align="corner").encode(kp, generator=g)
    weights = (torch.rand(b, K, generator=g) > 0.2).float()
    target.heatmaps[weights == 0] = 0  # masked keypoints have empty targets, as the codec makes them
    loss = H3RSpatialCELoss()(output, target.heatmaps, weights)
    reference = spatial_ce(output, Target(target.heatmaps, target.keypoints, weights))
    torch.testing.assert_close(loss, reference, rtol=0, atol=0)
    loss.backward()
    assert output.grad[weights == 0].abs().max() == 0  # masked keypoints get no gradient
    # without weights (or use_target_weight=False): every keypoint weighs 1
    ones = spatial_ce(output, Target(target.heatmaps, target.keypoints, torch.ones(b, K)))
    torch.testing.assert_close(H3RSpatialCELoss()(output, target.heatmaps), ones)
    torch.testing.assert_close(H3RSpatialCELoss(use_target_weight=False)(output, target.heatmaps, weights), ones)
    torch.testing.assert_close(H3RSpatialCELoss(loss_weight=0.5)(output, target.heatmaps, weights), reference / 2)
    # a uniform output scores log(H W) on every keypoint
    flat = H3RSpatialCELoss()(torch.zeros(b, K, h, w), target.heatmaps, weights)
    torch.testing.assert_close(flat, torch.tensor(float(np.log(h * w))))
    with pytest.raises(ValueError, match="keypoint-wise"):
        H3RSpatialCELoss()(output, target.heatmaps, torch.ones(b, K, h, w))
    with pytest.raises(ValueError, match="one shape"):
        H3RSpatialCELoss()(output, target.heatmaps[:, :-1])


def test_loss_on_the_codecs_encoding_of_a_batch():
    """What mmpose's HeatmapHead.loss computes: the codec's per-instance targets stacked, its
    keypoint_weights concatenated."""
    codec = KEYPOINT_CODECS.build(config(seed=0))
    kp = keypoints(8, n=2)
    visible = np.ones((2, K), dtype=np.float32)
    visible[1, :4] = 0
    encoded = [codec.encode(kp[i:i + 1], visible[i:i + 1]) for i in range(2)]
    heatmaps = torch.from_numpy(np.stack([e["heatmaps"] for e in encoded]))
    weights = torch.from_numpy(np.concatenate([e["keypoint_weights"] for e in encoded]))
    output = torch.randn(heatmaps.shape, generator=torch.Generator().manual_seed(1))
    loss = MODELS.module_dict["H3RSpatialCELoss"]()(output, heatmaps, weights)
    cells = heatmaps.flatten(2).argmax(-1)
    nll = -output.flatten(2).log_softmax(-1).gather(2, cells[..., None])[..., 0]  # -log p(drawn cell)
    torch.testing.assert_close(loss, (nll * weights).sum() / weights.sum())


def test_import_leaves_mmposes_models_and_datasets_alone():
    """mmpose.models and mmpose.datasets import xtcocotools, which numpy 2 breaks: the integration
    must not need them (a fresh interpreter, so that no other test has imported them)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, h3r.integrations.mmpose; "
            "print(sorted(m for m in ('mmpose.models', 'mmpose.datasets', 'mmpose.evaluation', "
            "'mmpose.apis', 'xtcocotools') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
