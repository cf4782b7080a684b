"""The theory chapters' figures (h3r.viz, chapters 1-3): what each one draws."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from h3r import viz

#: every figure made through h3r.viz is checked for what a reader trips over (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("readable_figures")


def _labels(ax) -> list[str]:
    return ax.get_legend_handles_labels()[1]


def test_randomized_error_by_fraction():
    table = pd.DataFrame({"f": [0.0, 0.5], "mean (MC)": [0.0, 0.1], "variance (MC)": [0.0, 4.0]})
    fig = viz.randomized_error_by_fraction(table, 4, 100)
    (ax,) = fig.axes
    floor, rounded, zero = ax.lines[:3]
    x, y = floor.get_data()
    np.testing.assert_allclose(y, -4 * x)
    assert rounded.get_ydata()[100] == pytest.approx(-1) and not zero.get_ydata().any()
    assert _labels(ax)[-1] == "randomized, Monte Carlo (100 draws)"
    bars = ax.containers[0]
    np.testing.assert_allclose(np.asarray(bars.lines[0].get_ydata(), float), [0.0, 0.1])
    assert "stride 4" in ax.get_ylabel()


def test_quantization_error_by_stride():
    rows = [{"stride": s, "system": system, "source": source, "error": s * (i + 1)}
            for s in (4, 8) for i, system in enumerate(viz.ERROR_STYLES) for source in ("closed form", "Monte Carlo")]
    fig = viz.quantization_error_by_stride(pd.DataFrame(rows), 256)
    (ax,) = fig.axes
    assert len(ax.lines) == 2 * len(viz.ERROR_STYLES)
    assert _labels(ax)[:2] == ["floor, closed form", "floor, Monte Carlo"]
    np.testing.assert_allclose(ax.lines[2].get_ydata(), [8, 16])  # round's closed form
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["4\n(64²)", "8\n(32²)"]


def test_codec_nme_by_stride_merges_coinciding_curves():
    rows = [{"dataset": d, "stride": s, "codec": c, "flip_test": False, "nme": nme}
            for d in ("a", "b") for s in (4, 8)
            for c, nme in (("floor", s / 2), ("twin", s / 2), ("h3r (one draw)", s / 4))]
    rows.append({"dataset": "a", "stride": 4, "codec": "floor", "flip_test": True, "nme": 99.0})
    fig = viz.codec_nme_by_stride(pd.DataFrame(rows), ["b", "a"], ["floor", "twin", "h3r (one draw)"], 64)
    assert [ax.get_title() for ax in fig.axes] == ["b", "a"]
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and _labels(ax) == ["floor\n= twin", "h3r (one draw)"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [2, 4])
    assert ax.lines[1].get_linestyle() == "--" and ax.lines[0].get_linestyle() == "-"
    assert len(fig.legends) == 1


def test_mean_decode_convergence():
    convergence = pd.DataFrame({"draws": [1, 4, 16], "rms_error": [2.0, 1.0, 0.5]})
    fig = viz.mean_decode_convergence_figure(convergence, 2.0, 0.7, -0.5)
    (ax,) = fig.axes
    _, noise, rounded = ax.lines
    np.testing.assert_allclose(noise.get_ydata(), [2.0, 1.0, 0.5])
    np.testing.assert_allclose(rounded.get_ydata(), [0.7, 0.7])
    assert ax.get_xscale() == ax.get_yscale() == "log" and "fitted slope -0.500" in ax.get_title()


def test_bias_by_fraction_draws_one_line_per_codec():
    bias = pd.DataFrame({"codec": ["a", "a", "b", "b"], "f": [0.0, 0.5] * 2, "bias": [0.0, 1.0, -1.0, -1.0]})
    fig = viz.bias_by_fraction(bias, 4)
    (ax,) = fig.axes
    data = [np.asarray(line.get_ydata(), float).tolist() for line in ax.lines]
    assert [0.0, 1.0] in data and [-1.0, -1.0] in data
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_target_gallery():
    target = torch.zeros(32, 32)
    target[16, 17] = 1
    panels = {f"codec {i}, draw": (target, torch.tensor([17.0, 16.0])) for i in range(10)}
    fig = viz.target_gallery(panels, 16)
    assert len(fig.axes) == 11  # ten panels and the colour bar
    ax = fig.axes[0]
    image = ax.images[0].get_array()
    assert image.shape == (9, 9) and image[4, 5] == 1 and image.sum() == 1
    assert ax.images[0].get_extent() == [11.5, 20.5, 20.5, 11.5]
    assert ax.lines[0].get_xydata().tolist() == [[17.0, 16.0]] and ax.get_title() == "codec 0,\ndraw"


def test_codec_throughput():
    speed = pd.DataFrame({"codec": ["a", "b"], "encode_per_s": [10.0, 20.0], "decode_per_s": [5.0, np.nan]})
    fig = viz.codec_throughput(speed.set_index("codec"), "cpu")
    (ax,) = fig.axes
    heights = sorted(p.get_height() for p in ax.patches if p.get_height() > 0)
    assert heights == [5.0, 10.0, 20.0]
    assert ax.get_yscale() == "log" and ax.get_title() == "Codec throughput on cpu"
    assert isinstance(fig, Figure)
