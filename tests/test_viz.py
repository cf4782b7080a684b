"""Pictures: keypoints over images, sample grids, heatmaps placed by the codec's alignment."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from h3r.data.layouts import IBUG68, MPII16
from h3r.data.synthetic import SyntheticFaces, SyntheticPose
from h3r.viz import (
    COLUMN_INCHES, FIGSIZE, FIGURE_INCHES, SKELETONS, book_style, draw_keypoints, fit_columns, sample_grid, skeleton,
)

#: every figure made through h3r.viz is checked for what a reader trips over (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("readable_figures")


def _axes():
    return Figure().subplots()


@pytest.mark.parametrize("layout", [IBUG68, MPII16])
def test_draw_keypoints_connects_the_layout(layout):
    image = np.zeros((32, 48, 3), np.uint8)
    keypoints = torch.rand(layout.num_keypoints, 2) * torch.tensor([47.0, 31.0])
    ax = draw_keypoints(_axes(), image, keypoints, layout=layout)
    assert len(ax.lines) == len(skeleton(layout)) > 0
    assert len(ax.images) == 1 and ax.images[0].get_extent() == [-0.5, 47.5, 31.5, -0.5]
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    np.testing.assert_allclose(np.sort(offsets, axis=0), np.sort(keypoints.numpy(), axis=0), rtol=1e-6)


def test_draw_keypoints_hides_invisible_points_and_their_segments():
    keypoints = np.stack([np.arange(16.0), np.arange(16.0)], 1)
    visible = np.ones(16)
    visible[[0, 9]] = 0
    occluded = np.zeros(16)
    occluded[3] = 1
    ax = draw_keypoints(_axes(), None, keypoints, visible, "mpii16", color="k", occluded=occluded)
    solid, hollow = ax.collections
    assert len(solid.get_offsets()) == 13 and len(hollow.get_offsets()) == 1
    first_leg = ax.lines[0].get_xydata()  # r_ankle (invisible), r_knee, r_hip, pelvis
    assert np.isnan(first_leg[0]).all() and not np.isnan(first_leg[1:]).any()


def test_draw_keypoints_rejects_a_layout_that_does_not_fit():
    with pytest.raises(ValueError, match="needs 68 keypoints"):
        draw_keypoints(_axes(), None, np.zeros((16, 2)), layout=IBUG68)


def test_skeletons_stay_inside_their_layouts():
    sizes = {"ibug68": 68, "wflw98": 98, "mpii16": 16, "coco17": 17}
    for name, polylines in SKELETONS.items():
        assert max(max(indices) for indices, _ in polylines) < sizes[name]
    assert skeleton(None) == () and skeleton("unknown") == ()


@pytest.mark.parametrize("cls", [SyntheticFaces, SyntheticPose])
def test_sample_grid_has_one_axes_per_sample(cls, tmp_path):
    ds = cls("test", 20, 64)
    fig = sample_grid(ds, n=5, cols=3, seed=1)
    assert isinstance(fig, Figure) and len(fig.axes) == 5
    assert all(len(ax.images) == 1 for ax in fig.axes)
    fig.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert len(sample_grid(ds, indices=[0, 3]).axes) == 2


def _shown_width_px(fig) -> int:
    """The width of ``fig`` as Jupyter renders it into the book (``bbox_inches="tight"``)."""
    import io

    from IPython.core.pylabtools import print_figure
    from PIL import Image

    with Image.open(io.BytesIO(print_figure(fig, "png", bbox_inches="tight"))) as im:
        return im.size[0]


def test_book_style_makes_figures_as_wide_as_the_text_column_allows():
    import matplotlib
    import pandas as pd

    pytest.importorskip("IPython")
    assert COLUMN_INCHES == 6.88 and FIGURE_INCHES < COLUMN_INCHES and FIGSIZE[0] == FIGURE_INCHES
    options = ("display.max_rows", "display.max_columns", "display.max_colwidth", "display.width", "display.precision")
    with matplotlib.rc_context(), pd.option_context(*[x for o in options for x in (o, pd.get_option(o))]):
        book_style()
        assert tuple(matplotlib.rcParams["figure.figsize"]) == FIGSIZE and matplotlib.rcParams["figure.dpi"] == 100
        assert matplotlib.rcParams["legend.loc"] == "best"
        for layout in (None, "constrained"):  # constrained layout fills the figure to its edges
            fig = Figure(layout=layout)
            ax = fig.subplots()
            ax.plot([0, 1], [1, 0], label="a line")
            ax.set(xlabel="stride", ylabel="NME (%)")
            ax.legend()
            assert _shown_width_px(fig) <= COLUMN_INCHES * 100, layout


def test_fit_columns_stacks_panels_that_would_not_fit_the_column():
    assert fit_columns(6, 1.65) == 4 and fit_columns(3, 1.65) == 3 and fit_columns(6, 2.2) == 3
    assert fit_columns(4, 10.0) == 1 and fit_columns(2, 1.0, width=1.5) == 1


def test_grids_fit_the_text_column():
    pytest.importorskip("IPython")
    ds = SyntheticFaces("test", 20, 64)
    grid = sample_grid(ds, n=12, cols=6, seed=0)  # chapter 4's call
    assert len(grid.axes) == 12 and grid.get_figwidth() <= FIGURE_INCHES
    assert grid.axes[0].get_subplotspec().get_gridspec().get_geometry() == (3, 4)
    assert _shown_width_px(grid) <= COLUMN_INCHES * 100


# --- learned chapters (0, 4-7) ---

import pandas as pd  # noqa: E402

from h3r import viz  # noqa: E402


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_ced_figure_draws_one_curve_per_run_with_its_auc():
    fig = viz.ced_figure({"h3r": torch.tensor([0.0, 0.05]), "argmax-round": torch.tensor([0.2, 0.4])})
    (ax,) = fig.axes
    assert _legend(ax) == ["h3r: AUC@0.1 0.750", "argmax-round: AUC@0.1 0.000"]
    x, y = ax.lines[0].get_data()
    assert x[0] == 0 and x[-1] == pytest.approx(30) and y[-1] == pytest.approx(100)
    assert ax.get_xlabel() == "NME (%)"


def test_learning_curves_figure_draws_each_method_and_its_target_error():
    curves = pd.DataFrame({"method": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2], "NME (%)": [9.0, 7.0, 8.0, 6.0]})
    errors = pd.DataFrame({"method": ["a", "b", "a"], "heatmap_stride": [4, 4, 8], "target_error": [3.0, 2.0, 5.0]})
    (ax,) = viz.learning_curves_figure(curves, errors, stride=4).axes
    assert list(ax.lines[0].get_ydata()) == [9.0, 7.0] and list(ax.lines[1].get_ydata()) == [3.0, 3.0]
    assert list(ax.lines[3].get_ydata()) == [2.0, 2.0]  # b's level, at stride 4
    assert ax.lines[1].get_color() == ax.lines[0].get_color()
    assert "stride 4" in ax.get_title()


FAMILIES = {"one": {"deterministic": "a", "randomized": "b"}, "two": {"deterministic": "c", "randomized": "d"}}


def test_resolution_figure_has_a_panel_per_family_with_learned_and_target_lines():
    trained = pd.DataFrame({"method": ["a", "a", "b", "b", "c", "d"], "heatmap_stride": [4, 8, 4, 8, 4, 4],
                            "NME (%)": [5.0, 9.0, 4.0, 5.0, 6.0, 6.5]})
    errors = pd.DataFrame({"method": ["a", "a", "b", "c", "d"], "heatmap_stride": [4, 8, 4, 4, 4],
                           "target_error": [1.0, 2.0, 0.5, 1.0, 1.0]})
    fig = viz.resolution_figure(trained, errors, FAMILIES, [4, 8])
    assert [ax.get_title() for ax in fig.axes] == ["one", "two"]
    one = fig.axes[0]
    assert _legend(one) == ["a, target error", "b, target error", "deterministic: a, learned",
                            "randomized: b, learned"]
    assert one.lines[0].get_ydata().tolist() == [5.0, 9.0]  # a's learned NME by stride
    assert list(one.get_xticks()) == [4, 8] and one.get_xscale() == "log"
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["4", "8"]


def test_differences_figure_has_a_zero_line_and_one_series_per_treatment():
    diffs = pd.DataFrame({"family": ["one", "one", "two"], "treatment": ["b", "b", "d"], "control": ["a", "a", "c"],
                          "heatmap_stride": [4, 8, 4], "mean": [-1.0, -2.0, 0.5], "low": [-1.5, -3.0, 0.0],
                          "high": [-0.5, -1.0, 1.0]})
    fig = viz.differences_figure(diffs, [4, 8])
    assert len(fig.axes) == 2 and _legend(fig.axes[0]) == ["b - a"]
    assert fig.axes[0].lines[0].get_ydata().tolist() == pytest.approx([-1.0, -2.0])
    assert any(list(line.get_ydata()) == [0, 0] for line in fig.axes[1].lines)


def test_activation_figure_draws_the_top_k_rows_by_stride():
    activation = pd.DataFrame({"points": ["top-1", "top-9", "window 3x3", "top-1"], "stride": [4, 4, 4, 8],
                               "n_points": [1, 9, 9, 1], "nme": [6.0, 5.0, 4.0, 7.0]})
    (ax,) = viz.activation_figure(activation, [1, 9]).axes
    assert _legend(ax) == ["stride 4", "stride 8"]
    assert ax.lines[0].get_ydata().tolist() == [6.0, 5.0]  # the window is not a top-k point
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "9"]


def test_mechanism_figure_shows_predicted_over_expected_patches():
    from h3r.codecs import build_codec

    codec = build_codec("h3r", 32, stride=4)
    keypoints = torch.tensor([[[13.3, 14.1], [17.0, 9.6]]])
    logits = torch.randn(1, 2, 8, 8)
    fig = viz.mechanism_figure(logits, keypoints, codec, [0, 1], stride=4)
    assert len(fig.axes) == 2 * 2 + 1  # the patches and the colour bar
    assert fig.axes[0].get_title() == "keypoint 0" and fig.axes[0].get_ylabel() == "predicted"
    assert fig.axes[2].get_ylabel() == "expected target"
    assert fig.axes[0].images[0].get_array().shape == (5, 5)


def test_macs_and_cost_figures_draw_a_line_per_network_and_codec():
    by_stride = pd.DataFrame({"network": ["n"] * 2 + ["m"] * 2, "stride": [2, 4, 2, 4],
                              "MACs (G)": [4.0, 1.0, 2.0, 0.5]})
    (ax,) = viz.macs_figure(by_stride).axes
    assert _legend(ax) == ["n", "m"] and ax.lines[0].get_ydata().tolist() == [4.0, 1.0]
    assert ax.get_yscale() == "log"
    runs = pd.DataFrame({"preset": ["h3r", "h3r", "argmax-round"], "input_size": [32, 64, 32],
                         "GMACs": [0.1, 0.4, 0.1], "NME (%)": [6.0, 4.0, 8.0]})
    (ax,) = viz.cost_figure(runs).axes
    assert _legend(ax) == ["argmax-round", "h3r"]
    assert list(ax.containers[1].lines[0].get_ydata()) == [6.0, 4.0]  # h3r's errorbar line
    assert [t.get_text() for t in ax.texts] == ["32 px", "64 px"]
