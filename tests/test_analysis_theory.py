"""The theory chapters' computations (h3r.analysis, chapters 1-3) against their closed forms."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from h3r import analysis
from h3r.codecs import H3R, build_codec
from h3r.config import PRESETS, heatmap_presets


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_corner_mean_is_the_mean_distance_to_a_corner_of_the_unit_square():
    rng = np.random.default_rng(0)
    assert analysis.CORNER_MEAN == pytest.approx(0.7652, abs=1e-4)
    assert np.hypot(*rng.random((2, 400_000))).mean() == pytest.approx(analysis.CORNER_MEAN, abs=2e-3)


def test_vanilla_closed_form():
    closed = analysis.vanilla_closed_form(4)
    assert closed["floor"]["mean"] == -2 and closed["round"]["mean"] == 0
    assert closed["floor"]["mean |e|"] == 2 and closed["round"]["mean |e|"] == 1
    assert closed["floor"]["rms"] == pytest.approx(4 / math.sqrt(3))
    assert closed["round"]["worst ||e|| (2-D)"] == pytest.approx(2 * math.sqrt(2))
    assert closed["floor"]["mean ||e|| (2-D)"] == pytest.approx(2 * closed["round"]["mean ||e|| (2-D)"])


def test_vanilla_errors_match_the_closed_form_on_a_grid_of_fractions():
    # keypoints at the centres of 64 x 64 sub-cells of one cell: the midpoint rule of the closed forms
    s, n = 4, 64
    f = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    u = 20 + torch.stack(torch.meshgrid(f, f, indexing="ij"), -1).reshape(-1, 1, 2)  # heatmap units
    kp = ((u + 0.5) * s - 0.5).float()
    closed = analysis.vanilla_closed_form(s)
    for quantize, e in analysis.vanilla_errors(kp, 256, s).items():
        assert e.shape == kp.shape and e.dtype == torch.float64
        stats = analysis.error_stats(e)
        for stat in ("mean", "mean |e|", "rms", "mean ||e|| (2-D)"):
            assert stats[stat] == pytest.approx(closed[quantize][stat], abs=2e-3), (quantize, stat)
        assert stats["worst |e|"] <= closed[quantize]["worst |e|"]


def test_error_stats_of_known_errors():
    stats = analysis.error_stats(torch.tensor([[[3.0, 4.0]], [[-1.0, 0.0]]]))
    assert stats == pytest.approx({"mean": 1.0, "mean |e|": 2.0, "rms": math.sqrt(5), "worst |e|": 3.0,
                                   "mean ||e|| (2-D)": 3.0, "worst ||e|| (2-D)": 5.0})


def test_randomized_draw_norm_matches_monte_carlo():
    rng = np.random.default_rng(0)
    f = rng.random((2, 400_000))
    e = (rng.random(f.shape) < f) - f  # one draw's error per axis, in cells
    assert analysis.randomized_draw_norm(8) == pytest.approx(8 * np.hypot(*e).mean(), rel=5e-3)
    # between round's mean 2-D error and the RMS bound sqrt(E[e^2]) = s sqrt(2/6)
    assert analysis.CORNER_MEAN / 2 < analysis.randomized_draw_norm(1) < math.sqrt(1 / 3)


def test_points_per_stride_caps_large_heatmaps():
    assert analysis.points_per_stride([1, 4, 16], 256, 1000, 2**20) == {1: 16, 4: 256, 16: 1000}


def test_uniform_keypoints_stay_inside_the_margins():
    kp = analysis.uniform_keypoints(10_000, 256, 4, _generator(), margin=2)
    assert kp.shape == (10_000, 1, 2)
    assert kp.min() >= 8 and kp.max() <= 255 - 12
    assert kp.mean().item() == pytest.approx((8 + 243) / 2, abs=1.5)


def test_vanilla_table_and_its_gaps():
    points = {4: 2000, 16: 500}
    keypoints = {s: analysis.uniform_keypoints(n, 256, s, _generator()) for s, n in points.items()}
    table = analysis.vanilla_table(keypoints, 256)
    assert len(table) == 2 * 2 * 6
    row = table.set_index(["stride", "encoder", "statistic"]).loc[(16, "floor", "mean")]
    assert row.closed_form == -8 and row["|difference|"] == abs(row.monte_carlo + 8)
    gaps = analysis.vanilla_gaps(table, points)
    assert list(gaps.index) == [4, 16]
    assert gaps["6 standard errors (px)"][4] == pytest.approx(6 * 4 / math.sqrt(12 * 2000))
    assert (gaps.iloc[:, 0] < gaps.iloc[:, 1]).all()


def test_randomized_by_fraction_is_unbiased_with_the_bernoulli_variance():
    fractions = torch.tensor([0.0, 0.25, 0.5])
    table = analysis.randomized_by_fraction(256, 4, fractions, 4000, _generator())
    assert list(table.columns) == ["f", "mean (MC)", "mean (closed form)", "variance (MC)", "variance (closed form)"]
    np.testing.assert_allclose(table["variance (closed form)"], [0, 3, 4])
    np.testing.assert_allclose(table["variance (MC)"], [0, 3, 4], atol=0.3)
    assert table["mean (MC)"][0] == 0 and table["mean (MC)"].abs().max() < 0.15


def test_error_by_stride():
    table = analysis.error_by_stride({4: 2000, 8: 500}, 256, _generator())
    error = table.set_index(["stride", "system", "source"]).error
    assert len(table) == 2 * 4 * 2
    assert error[8, "round", "closed form"] == pytest.approx(4 * analysis.CORNER_MEAN)
    assert error[4, "randomized, expected target", "Monte Carlo"] < 1e-4
    for system in ("floor", "round", "randomized, one draw"):
        assert error[4, system, "Monte Carlo"] == pytest.approx(error[4, system, "closed form"], rel=0.05)


def test_codec_error_table_has_both_h3r_targets():
    table = analysis.codec_error_table({8: 16}, 128, _generator())
    h3r_presets = [name for name, p in PRESETS.items() if p.codec == H3R.name]
    assert len(table) == len(heatmap_presets()) + len(h3r_presets)
    assert "simcc" not in set(table.codec) and "local-soft-argmax" in set(table.codec)  # no heatmap, no row
    mean = table.set_index("codec")["mean"]
    assert mean["h3r (expected target)"] < 1e-4 and mean["argmax-floor"] > mean["argmax-round"] > 0
    assert (table.worst >= table["mean"]).all()


def test_decode_draws_and_the_convergence_of_their_mean():
    codec = build_codec("h3r", 256, stride=4)
    kp = analysis.uniform_keypoints(64, 256, 4, _generator(), margin=2)
    draws = analysis.decode_draws(codec, kp, 3, generator=_generator(1))
    assert draws.shape == (3, 64, 1, 2) and draws.dtype == torch.float64
    convergence = analysis.mean_decode_convergence(codec, kp, [1, 16, 256], _generator(1), chunk=64)
    assert list(convergence.draws) == [1, 16, 256]
    noise = analysis.sampling_noise(codec, kp)
    np.testing.assert_allclose(convergence.rms_error, noise / np.sqrt(convergence.draws), rtol=0.35)
    # a deterministic codec: the mean of its decodes is its one decode
    rounded = analysis.mean_decode_convergence(build_codec("argmax-round", 256, stride=4), kp, [1, 8], _generator())
    assert rounded.rms_error[0] == rounded.rms_error[1] > 0


def test_sampling_noise_at_the_cell_midpoint():
    codec = build_codec("h3r", 256, stride=4)
    kp = codec.to_input(torch.tensor([[[10.5, 20.5]]]))
    assert analysis.sampling_noise(codec, kp) == pytest.approx(4 * math.sqrt(0.5))


def test_lossless_table_needs_the_four_neighbours():
    codec = build_codec("h3r", 128, stride=4)
    kp = analysis.uniform_keypoints(32, 128, 4, _generator(), margin=2)
    table = analysis.lossless_table(codec, kp, [("topk", {"k": 1}), ("topk", {"k": 4}), ("window", {"radius": 1})])
    assert list(table.activation_points) == ["top-1", "top-1", "top-4", "top-4", "window 3x3", "window 3x3"]
    assert list(table.weighting) == ["normalized", "softmax"] * 3
    assert (table.max_error[2:] < 1e-4).all() and (table.max_error[:2] > 0.1).all()


def test_bias_table_and_summary():
    kp = torch.tensor([[[10.0, 5.0]], [[11.0, 5.0]]])
    decoded = {"a": kp + torch.tensor([0.5, 9.0]), "b": kp - torch.tensor([[[0.0, 0.0]], [[2.0, 0.0]]])}
    bias = analysis.bias_table(decoded, kp, torch.tensor([0.25, 0.75]))
    assert list(bias.codec) == ["a", "a", "b", "b"] and list(bias.f) == [0.25, 0.75, 0.25, 0.75]
    assert list(bias.bias) == [0.5, 0.5, 0.0, -2.0]
    summary = analysis.bias_summary(bias)
    assert summary.loc["b"].tolist() == [2.0, -1.0] and summary.loc["a"].tolist() == [0.5, 0.5]
    assert math.copysign(1, analysis.bias_summary(bias.assign(bias=-0.0)).mean_bias["a"]) == 1


def test_preset_table_lists_every_heatmap_preset():
    table = analysis.preset_table(256, 4)
    assert list(table.index) == heatmap_presets() and "rle" not in table.index
    assert table.loc["h3r-official", "alignment"] == "corner" and table.loc["dark", "options"] == "-"
    assert (table.heatmap == "64x64").all()


def test_gallery_targets():
    panels = analysis.gallery_targets(128, 4, _generator())
    assert len(panels) == 10 and list(panels)[5] == "soft-argmax (learned)"
    target, point = panels["argmax-floor"]
    assert target.shape == (32, 32) and point.shape == (2,)
    np.testing.assert_allclose(point, [16.3, 16.7], atol=1e-5)
    assert divmod(int(target.argmax()), 32) == (16, 16)  # row y, column x: the floor cell
    expected = panels["h3r, expectation"][0]
    np.testing.assert_allclose(expected[16:18, 16:18], [[0.7 * 0.3, 0.3 * 0.3], [0.7 * 0.7, 0.3 * 0.7]], atol=1e-5)
    one_draw = panels["h3r, one draw"][0]
    assert one_draw.sum() == 1 and one_draw[16:18, 16:18].sum() == 1


def test_codec_nme_with_flips_and_its_tables(tmp_path):
    sets, missing = analysis.landmark_sets(tmp_path, 64, synthetic_faces=2)
    assert [lm.name for lm in sets] == ["synthetic_faces/test"] and len(sets[0]) == 2 and missing
    assert "not found under" in analysis.describe_sets(sets, tmp_path, missing)
    table = analysis.codec_nme_with_flips(sets, [4, 8])
    assert len(table) == 2 * (len(analysis.ROUND_TRIPS) + len(analysis.FLIP_ROWS))
    assert analysis.faces_per_stride(table, sets[0].name) == "2 faces at stride 4, 2 faces at stride 8"
    wide = analysis.nme_by_stride(table, sets[0].name)
    assert list(wide.index) == list(analysis.ROUND_TRIPS)
    assert list(wide.columns) == ["stride 4 (16x16)", "stride 8 (8x8)"]
    flips = analysis.flip_table(table, sets[0].name)
    assert list(flips.index) == analysis.FLIP_ROWS
    assert list(flips.columns) == [(4, "plain"), (4, "flip test"), (8, "plain"), (8, "flip test")]
    mismatch = flips.loc["h3r target, official decoder"]
    assert mismatch[4, "flip test"] / mismatch[4, "plain"] == pytest.approx(1 / math.sqrt(2), abs=1e-3)
    assert isinstance(table, pd.DataFrame) and table.flip_test.sum() == 2 * len(analysis.FLIP_ROWS)
