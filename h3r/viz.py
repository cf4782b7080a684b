"""Pictures for the book: keypoints on images, sample grids, heatmaps over images.

Matplotlib only, and nothing is shown: functions draw on an ``Axes`` or return a ``Figure``.
``imshow`` puts pixel ``(c, r)`` on ``[c - 1/2, c + 1/2] x [r - 1/2, r + 1/2]``, which is the
convention of :mod:`h3r.geometry`, so keypoints in input pixels are plotted as they are.
"""
from __future__ import annotations

import itertools

from h3r._extras import require

require("data", "h3r.viz")

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from h3r.data.sample import denormalize_image

#: the width of the book's text column in inches at the book's 100 dpi (688 px in the default
#: sphinx-book-theme in the 1280-px window ``python -m h3r.book check`` measures in): a figure at
#: most this wide is shown at its own size; a wider one is scaled down, and its text with it (the
#: check reports it)
COLUMN_INCHES = 6.88
#: the widest ``figsize`` to ask for: the column less the 0.1-in padding that Jupyter's
#: ``bbox_inches="tight"`` adds on each side (a constrained 6.8-in figure comes out 691 px wide).
#: Size multi-panel figures within it: ``figsize=(FIGURE_INCHES, 3.2)`` for a row of panels, or
#: stack them (:func:`fit_columns`); a legend placed outside the axes widens the figure further.
FIGURE_INCHES = 6.6
#: matplotlib's default figure size after :func:`book_style`: as wide as the column allows
FIGSIZE = (FIGURE_INCHES, 4.0)
#: the book's resolution: an inch of figure is 100 CSS px of page
DPI = 100


def book_style() -> None:
    """The book's look, set once per chapter: seaborn's white grid with legible legends and ticks,
    figures at 100 dpi (a 2-inch panel is 200 px) and by default as wide as the text column
    allows (:data:`FIGSIZE`; a figure made wider than :data:`COLUMN_INCHES` is shrunk to it, its
    text with it), legends where they cover the least data, and pandas tables shown whole (no
    elided rows, columns or cells)."""
    import pandas as pd
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", rc={
        "figure.dpi": DPI, "figure.figsize": FIGSIZE, "legend.loc": "best",
        "legend.fontsize": 10, "legend.title_fontsize": 10, "legend.framealpha": 0.9,
        "axes.titlesize": 11, "xtick.labelsize": 9.5, "ytick.labelsize": 9.5})
    for option, value in (("display.max_rows", 500), ("display.max_columns", 100), ("display.max_colwidth", None),
                          ("display.width", 200), ("display.precision", 4)):
        pd.set_option(option, value)


#: the smallest text a figure may show, in points as it appears on the page
MIN_TEXT_PT = 8


def readability_problems(fig: Figure) -> list[str]:
    """What a reader would trip over in ``fig`` as the book shows it: text under
    :data:`MIN_TEXT_PT` points once a figure wider than the text column is shrunk to it, and a
    legend inside an axes that covers a plotted point. Empty when there is none."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    if fig.canvas is None or not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    scale = min(1.0, COLUMN_INCHES / fig.get_figwidth())
    problems = [f"text {t.get_text()[:30]!r} shows at {t.get_fontsize() * scale:.1f} pt (at least {MIN_TEXT_PT})"
                for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
                and t.get_fontsize() * scale < MIN_TEXT_PT - 1e-6]
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        box = legend.get_window_extent()
        if not ax.get_window_extent().contains(*box.p0) or not ax.get_window_extent().contains(*box.p1):
            continue  # a legend beside the axes covers nothing
        points = [line.get_transform().transform(line.get_xydata()) for line in ax.lines if line.get_visible()]
        points += [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections
                   if c.get_visible() and len(c.get_offsets())]
        covered = sum(int(box.contains(x, y)) for xy in points for x, y in np.asarray(xy).reshape(-1, 2)
                      if np.isfinite(x) and np.isfinite(y))
        if covered:
            problems.append(f"the legend of axes {ax.get_title()[:40]!r} covers {covered} plotted point(s)")
    return problems


def fit_columns(cols: int, size: float, width: float = FIGURE_INCHES) -> int:
    """How many panels of ``size`` inches fit side by side in ``width`` (the text column): at most
    ``cols``, at least one. A grid of more panels gets more rows, not smaller panels."""
    return max(1, min(cols, int(width / size + 1e-9)))


#: the label of every stride axis: what a heatmap stride is, in the reader's units
STRIDE_LABEL = "heatmap stride (input pixels per heatmap cell)"


# Polylines drawn between keypoints, per layout name: (indices, side); a closed contour repeats
# its first index. Sides pick colours when no colour is given.
SKELETONS: dict[str, tuple[tuple[tuple[int, ...], str], ...]] = {
    "ibug68": (
        (tuple(range(0, 17)), "centre"), (tuple(range(17, 22)), "right"), (tuple(range(22, 27)), "left"),
        (tuple(range(27, 31)), "centre"), (tuple(range(31, 36)), "centre"),
        ((*range(36, 42), 36), "right"), ((*range(42, 48), 42), "left"),
        ((*range(48, 60), 48), "centre"), ((*range(60, 68), 60), "centre"),
    ),
    "wflw98": (
        (tuple(range(0, 33)), "centre"), ((*range(33, 42), 33), "right"), ((*range(42, 51), 42), "left"),
        (tuple(range(51, 55)), "centre"), (tuple(range(55, 60)), "centre"),
        ((*range(60, 68), 60), "right"), ((*range(68, 76), 68), "left"),
        ((*range(76, 88), 76), "centre"), ((*range(88, 96), 88), "centre"),
    ),
    "mpii16": (
        ((0, 1, 2, 6), "right"), ((6, 3, 4, 5), "left"), ((6, 7, 8, 9), "centre"),
        ((10, 11, 12, 7), "right"), ((7, 13, 14, 15), "left"),
    ),
    "coco17": (
        ((0, 1, 3), "left"), ((0, 2, 4), "right"), ((5, 7, 9), "left"), ((6, 8, 10), "right"),
        ((5, 6, 12, 11, 5), "centre"), ((11, 13, 15), "left"), ((12, 14, 16), "right"),
    ),
}
SIDE_COLORS = {"left": "#1f9bff", "right": "#ff4b3e", "centre": "#3ddc84"}


def skeleton(layout) -> tuple[tuple[tuple[int, ...], str], ...]:
    """The polylines of a layout (or layout name); empty for an unknown layout."""
    name = layout if isinstance(layout, str) or layout is None else layout.name
    return SKELETONS.get(name, ())


def draw_keypoints(ax: Axes, image, keypoints, visible=None, layout=None, color=None,
                   connect: bool = True, occluded=None, size: float = 10.0) -> Axes:
    """Draw ``image`` (uint8 (H, W, 3), a normalised (3, H, W) tensor, or None to draw over what
    is there) and ``keypoints`` (K, 2) in input pixels.

    Invisible keypoints (``visible`` == 0) are left out, and so are the segments that touch them;
    ``occluded`` ones are drawn hollow. ``connect`` joins the contours / limbs of ``layout``.
    ``color`` colours everything; by default the subject's left is blue, right red, centre green.
    """
    if image is not None:
        ax.imshow(_as_uint8(image))
    xy = _numpy(keypoints).reshape(-1, 2)
    shown = np.ones(len(xy), dtype=bool) if visible is None else _numpy(visible).reshape(-1) > 0
    hollow = np.zeros(len(xy), dtype=bool) if occluded is None else _numpy(occluded).reshape(-1) > 0
    polylines = skeleton(layout) if connect else ()
    needed = max((max(indices) + 1 for indices, _ in polylines), default=0)
    if needed > len(xy):
        name = getattr(layout, "name", layout)
        raise ValueError(f"layout {name!r} needs {needed} keypoints, got {len(xy)}; pass the dataset's layout")
    for indices, side in polylines:
        indices = np.asarray(indices)
        path = np.where(shown[indices, None], xy[indices], np.nan)  # NaN breaks the line
        ax.plot(path[:, 0], path[:, 1], color=color or SIDE_COLORS[side], lw=1.0, alpha=0.8)
    point_color = color or SIDE_COLORS["centre"]
    solid, empty = shown & ~hollow, shown & hollow
    ax.scatter(xy[solid, 0], xy[solid, 1], s=size, c=point_color, edgecolors="black", linewidths=0.3, zorder=3)
    ax.scatter(xy[empty, 0], xy[empty, 1], s=size, facecolors="none", edgecolors=point_color,
               linewidths=0.8, zorder=3)
    ax.set_axis_off()
    return ax


def sample_grid(dataset, n: int = 12, cols: int = 6, seed: int = 0, indices=None,
                size: float = 1.65) -> Figure:
    """A figure of ``n`` random samples (or ``indices``) with their keypoints and subset flags, in
    panels of ``size`` inches, at most ``cols`` a row and as many as fit the text column
    (:func:`fit_columns`; 4 of the default 1.65 in)."""
    if indices is None:
        rng = np.random.default_rng(seed)
        indices = np.sort(rng.choice(len(dataset), size=min(n, len(dataset)), replace=False))
    indices = [int(i) for i in indices]
    cols = fit_columns(min(cols, len(indices)), size)
    rows = -(-len(indices) // cols)
    fig = Figure(figsize=(size * cols, size * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, index in zip(axes, indices):
        sample = dataset[index]
        draw_keypoints(ax, sample["image"], sample["keypoints"], sample.get("visible"),
                       getattr(dataset, "layout", None), occluded=sample.get("occluded"))
        flags = [k for k, v in sample.get("subsets", {}).items() if bool(v)]
        ax.set_title(f"#{index} " + " ".join(flags), fontsize=8)
    for ax in axes[len(indices):]:
        fig.delaxes(ax)
    return fig


def _cells_panel(ax: Axes, values, extent, point, vmax: float, ms: float = 9):
    """A few heatmap cells (``values`` (h, w) over ``extent`` in heatmap units) on a [0, ``vmax``]
    colour scale, a cross on the keypoint ``point`` (2,), no ticks; returns the image."""
    image = ax.imshow(_numpy(values), cmap="magma", vmin=0, vmax=vmax, extent=extent)
    ax.plot(*_numpy(point).tolist(), "x", color="cyan", ms=ms, mew=2)
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def legend_below(ax: Axes, ncol: int = 2, **options):
    """The legend of ``ax`` under it, outside the plotted area, where it covers no data (the
    figure's layout made constrained, so that it keeps room for it)."""
    ax.figure.set_layout_engine("constrained")
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=ncol, frameon=False, **options)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _as_uint8(image) -> np.ndarray:
    """uint8 (H, W, 3) from itself or from a normalised (3, H, W) tensor."""
    if isinstance(image, torch.Tensor) and image.is_floating_point() and image.ndim == 3 and len(image) == 3:
        return denormalize_image(image)
    image = _numpy(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) image or a normalised (3, H, W) tensor, "
                         f"got {image.dtype} {image.shape}")
    return image


# --- theory chapters (1-3) ---

def randomized_error_by_fraction(table, stride: int, draws: int) -> Figure:
    """Chapter 1: the x error of floor, round and one randomized draw against the fractional
    position ``f``: closed forms as lines (randomized: its mean and one standard deviation
    ``s sqrt(f (1 - f))``), the Monte Carlo mean and standard deviation of ``table`` (columns ``f``,
    ``mean (MC)``, ``variance (MC)``; :func:`h3r.analysis.randomized_by_fraction`) as error bars."""
    dense = np.linspace(0, 1, 401)
    fig = Figure(figsize=(FIGURE_INCHES, 3.8))
    ax = fig.subplots()
    ax.plot(dense, -stride * dense, color="C3", label="floor: $-sf$")
    ax.plot(dense, stride * (np.floor(dense + 0.5) - dense), color="C1", label="round: $s(\\mathrm{round}(u)-u)$")
    std = stride * np.sqrt(dense * (1 - dense))
    ax.fill_between(dense, -std, std, color="C0", alpha=0.15, label="randomized: $\\pm$ one s.d. $s\\sqrt{f(1-f)}$")
    ax.plot(dense, 0 * dense, color="C0", label="randomized: mean $0$")
    ax.errorbar(table["f"], table["mean (MC)"], yerr=np.sqrt(table["variance (MC)"]), fmt="o", color="C0", ms=4,
                capsize=2, label=f"randomized, Monte Carlo ({draws} draws)")
    ax.set(xlabel="fractional part $f$ of the keypoint (heatmap cells)",
           ylabel=f"error $e$ (input px, stride {stride})",
           title="Quantization error against the fractional position")
    legend_below(ax, fontsize=9)
    return fig


#: chapter 1's systems: colour, Monte Carlo marker, closed-form line style
ERROR_STYLES = {"floor": ("C3", "s", "-"), "round": ("C1", "o", "--"), "randomized, one draw": ("C0", "^", "-."),
                "randomized, expected target": ("C2", "D", ":")}


def quantization_error_by_stride(table, input_size: int) -> Figure:
    """Chapter 1: mean Euclidean error against the stride (log 2 axis, ticks naming the heatmap
    sizes) of each system of :data:`ERROR_STYLES`, closed forms as lines and Monte Carlo as hollow
    markers; ``table`` has columns ``stride, system, source, error``
    (:func:`h3r.analysis.error_by_stride`)."""
    fig = Figure(figsize=(FIGURE_INCHES, 4.0))
    ax = fig.subplots()
    for system, (color, marker, line) in ERROR_STYLES.items():
        closed = table[(table.system == system) & (table.source == "closed form")]
        mc = table[(table.system == system) & (table.source == "Monte Carlo")]
        ax.plot(closed.stride, closed.error, line, color=color, lw=2, label=f"{system}, closed form")
        ax.plot(mc.stride, mc.error, marker, color=color, ms=8, mfc="none", mew=1.8, label=f"{system}, Monte Carlo")
    strides = sorted(table.stride.unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(strides, [f"{s}\n({input_size // s}²)" for s in strides])
    ax.set(xlabel=STRIDE_LABEL, ylabel="mean Euclidean error (input px)",
           title=f"Quantization error against heatmap resolution ({input_size}px input)")
    ax.legend(ncol=2, loc="upper left")
    return fig


def codec_nme_by_stride(nme_table, datasets: list[str], codecs: list[str], input_size: int) -> Figure:
    """Chapter 1: codec-only NME against the stride, one panel per dataset (in ``datasets``' order)
    of ``nme_table`` (:func:`h3r.analysis.codec_nme_table`, its rows without the flip test), one
    line per codec of ``codecs``; codecs whose curves coincide on every dataset (to 0.001 % NME)
    share one line and one legend entry. One-draw rows are dashed."""
    import seaborn as sns

    plain = nme_table[~nme_table.flip_test]
    curves = plain.pivot(index=["dataset", "stride"], columns="codec", values="nme")[list(codecs)]
    groups = [list(g) for g in curves.T.round(3).groupby(list(curves.index), sort=False).groups.values()]
    colors = dict(zip(codecs, sns.color_palette("tab10", len(codecs) - 1) + [(0.2, 0.2, 0.2)]))
    markers = dict(zip(codecs, "osD^v<>phX*"))
    strides = sorted(plain.stride.unique())
    fig = Figure(figsize=(FIGURE_INCHES, 3.6 * len(datasets) + 1.6))
    axes = fig.subplots(len(datasets), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, datasets):
        for group in groups:
            curve = curves.loc[name, group[0]]
            ax.plot(curve.index, curve, "--" if "one draw" in group[0] else "-", marker=markers[group[0]],
                    color=colors[group[0]], ms=7, mfc="none", mew=1.5, label="\n= ".join(group))
        ax.set_xscale("log", base=2)
        ax.set_xticks(strides, [str(s) for s in strides])
        ax.set(title=name, xlabel=STRIDE_LABEL, ylabel="codec-only NME (%)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8)
    fig.suptitle(f"Codec-only NME: each target decoded, no network ({input_size} px crops)", fontsize=10)
    fig.tight_layout(rect=(0, 2.0 / fig.get_figheight(), 1, 1))
    return fig


def mean_decode_convergence_figure(convergence, noise: float, round_error: float, slope: float) -> Figure:
    """Chapter 2: the RMS error of the mean of ``T`` randomized decodes against ``T`` (log-log;
    ``convergence`` has columns ``draws``, ``rms_error``, :func:`h3r.analysis.mean_decode_convergence`),
    the sampling noise ``noise / sqrt(T)`` of an unbiased estimator, and argmax-round's
    ``round_error``, the same whatever ``T``; ``slope`` (fitted) goes in the title."""
    fig = Figure(figsize=(FIGURE_INCHES, 4.0))
    ax = fig.subplots()
    ax.loglog(convergence.draws, convergence.rms_error, "o-", label="H3R: RMS error of the mean decode")
    ax.loglog(convergence.draws, noise / np.sqrt(convergence.draws), "--", color="gray",
              label="$\\propto T^{-1/2}$ (sampling noise of an unbiased estimator)")
    ax.axhline(round_error, color="C1", label="argmax-round: a deterministic bias, whatever $T$")
    ax.set(xlabel="randomized encodings averaged, $T$", ylabel="RMS error of the mean (input px)",
           title=f"No bias: the mean's error is sampling noise, $\\propto 1/\\sqrt{{T}}$ (fitted slope {slope:.3f})")
    ax.legend()
    return fig


def bias_by_fraction(bias, stride: int) -> Figure:
    """Chapter 2: each codec's x error against the fractional position ``f_x``, one line per codec
    of ``bias`` (columns ``codec, f, bias``, :func:`h3r.analysis.bias_table`), legend below."""
    import seaborn as sns

    fig = Figure(figsize=(FIGURE_INCHES, 4.0))
    ax = fig.subplots()
    sns.lineplot(data=bias, x="f", y="bias", hue="codec", style="codec", markers=True, markersize=5, ax=ax)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel="fractional part $f_x$ of the keypoint (heatmap cells)",
           ylabel=f"x error (input px, stride {stride})",
           title="Bias of each codec's round trip against the sub-pixel position")
    # below the axes: a legend inside would cover the curves
    ax.legend(ncol=2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    return fig


def target_gallery(panels: dict, center: int, half: int = 4) -> Figure:
    """Chapter 3: 2 x 5 panels, each the ``(2 half + 1)``-cell square of a target around cell
    ``center`` on one colour scale [0, 1], a cross on the keypoint, and a colour bar. ``panels``:
    title -> (target (Hh, Wh), keypoint (2,) heatmap units), :func:`h3r.analysis.gallery_targets`."""
    fig = Figure(figsize=(FIGURE_INCHES, 3.4), layout="constrained")
    axes = fig.subplots(2, 5)
    lo, hi = center - half, center + half + 1
    extent = (lo - 0.5, hi - 0.5, hi - 0.5, lo - 0.5)
    for ax, (title, (target, point)) in zip(axes.flat, panels.items()):
        image = _cells_panel(ax, target[lo:hi, lo:hi], extent, point, vmax=1)
        ax.set_title(title.replace(", ", ",\n"), fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, label="target value")
    fig.suptitle(f"Training targets around one keypoint ({hi - lo}×{hi - lo} cells; ×: the true position)",
                 fontsize=10)
    return fig


def codec_throughput(speed, device: str) -> Figure:
    """Chapter 3: encode and decode samples per second of each codec (log axis); ``speed`` is
    indexed by codec with columns ``encode_per_s``, ``decode_per_s`` (:func:`h3r.benchmarks.codec_rates`)."""
    import seaborn as sns

    long = (speed.reset_index().melt(id_vars="codec", value_vars=["encode_per_s", "decode_per_s"],
                                     var_name="operation", value_name="samples_per_s").dropna())
    long["operation"] = long.operation.str.replace("_per_s", "")
    fig = Figure(figsize=(FIGURE_INCHES, 3.8))
    ax = fig.subplots()
    sns.barplot(data=long, x="codec", y="samples_per_s", hue="operation", ax=ax)
    ax.set_yscale("log")
    ax.set(xlabel="", ylabel="samples per second (log)", title=f"Codec throughput on {device}")
    ax.tick_params(axis="x", rotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    return fig


# --- learned chapters (0, 4-7) ---

def _stride_axis(ax: Axes, strides) -> None:
    """A log-2 x axis with a tick at each of ``strides``."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(strides), [str(s) for s in strides])


def ced_figure(errors: dict) -> Figure:
    """Cumulative error distributions: per label of ``errors`` (label -> per-face NME (N,), as a
    fraction of the normaliser), the share of faces with at most each NME up to 0.3, its AUC@0.1
    in the legend."""
    from h3r import metrics

    fig = Figure(figsize=(FIGURE_INCHES, 4.0))
    ax = fig.subplots()
    for label, nme in errors.items():
        thresholds, fractions = metrics.ced_curve(nme, threshold=0.3)
        ax.plot(thresholds * 100, fractions * 100, label=f"{label}: AUC@0.1 {metrics.auc(nme):.3f}")
    ax.set(xlabel="NME (%)", ylabel="test faces with at most this NME (%)",
           title="Cumulative error distribution, stride 4")
    legend_below(ax)
    return fig


def learning_curves_figure(curves, target_error, stride: int) -> Figure:
    """Test NME against epoch of each method of ``curves`` (:func:`h3r.study.training.learning_curves`,
    one run per method), with its target error at ``stride`` (``target_error``:
    :func:`h3r.study.resolution.target_errors`) dashed in the same colour."""
    fig = Figure(figsize=(FIGURE_INCHES, 4.2))
    ax = fig.subplots()
    levels = target_error[target_error.heatmap_stride == stride].set_index("method").target_error
    for i, (method, curve) in enumerate(curves.groupby("method", sort=False)):
        ax.plot(curve.epoch, curve["NME (%)"], "o-", color=f"C{i}", ms=4, label=method)
        ax.axhline(levels[method], color=f"C{i}", ls="--", lw=1.2)
    ax.set(xlabel="epoch", ylabel="test NME (%)",
           title=f"Test NME during training, stride {stride} (dashed: target error)")
    ax.legend(ncol=2)
    return fig


def resolution_figure(trained, target_error, families: dict, strides, value: str = "NME (%)",
                      label: str = "test NME (%)") -> Figure:
    """One panel per family of ``families`` (name -> rounding -> codec): each member's learned
    ``value`` against the stride (mean ± s.d. over the runs of ``trained``, axis ``label``) beside
    its target error (``target_error``, dashed, hollow squares; None: none, for a metric the
    target errors are not in)."""
    fig = Figure(figsize=(FIGURE_INCHES, 3.8 * len(families)))
    axes = fig.subplots(len(families), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (family, members) in zip(axes, families.items()):
        for i, (rounding, codec) in enumerate(members.items()):
            learned = trained[trained.method == codec].groupby("heatmap_stride")[value].agg(["mean", "std"])
            ax.errorbar(learned.index, learned["mean"], yerr=learned["std"].fillna(0), fmt="o-", color=f"C{i}",
                        capsize=3, label=f"{rounding}: {codec}, learned")
            if target_error is not None:
                own = target_error[target_error.method == codec].set_index("heatmap_stride").target_error
                ax.plot(own.index, own, "s--", color=f"C{i}", mfc="none", label=f"{codec}, target error")
        _stride_axis(ax, strides)
        ax.set(xlabel=STRIDE_LABEL, ylabel=label, title=family)
        ax.legend()
    fig.suptitle(f"Learned {value.removesuffix(' (%)')} (mean ± s.d. over seeds)"
                 + ("; dashed: target error" if target_error is not None else ""))
    fig.tight_layout()
    return fig


def differences_figure(diffs, strides, unit: str = "NME") -> Figure:
    """One panel per family of ``diffs`` (:func:`h3r.study.resolution.matched_differences`): each
    treatment's paired difference (of ``unit``) against its control at each stride, mean and 95 %
    interval, the treatments side by side on the log axis."""
    families = list(dict.fromkeys(diffs.family))
    fig = Figure(figsize=(FIGURE_INCHES, 3.4 * len(families)))
    axes = fig.subplots(len(families), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (family, group) in zip(axes, diffs.groupby("family", sort=False)):
        for i, (treatment, d) in enumerate(group.groupby("treatment", sort=False)):
            offset = 2 ** (0.06 * (i - 0.5))  # side by side, not on top of each other
            ax.errorbar(d.heatmap_stride * offset, d["mean"], yerr=[d["mean"] - d.low, d.high - d["mean"]], fmt="o",
                        capsize=4, color=f"C{i + 1}", label=f"{treatment} - {d.control.iloc[0]}")
        ax.axhline(0, color="black", lw=0.8)
        _stride_axis(ax, strides)
        ax.set(xlabel=STRIDE_LABEL, ylabel=f"paired difference in {unit} (points)", title=family)
        ax.legend(fontsize=8)
    fig.suptitle("Randomized (and exact) minus deterministic rounding,\npaired by seed: mean and 95 % interval",
                 fontsize=10)
    fig.tight_layout()
    return fig


def activation_figure(activation, ks) -> Figure:
    """NME against the number ``k`` of top-k activation points (``activation``:
    :func:`h3r.study.ablations.activation_points`, its top-k rows), one line per stride, mean ± s.d. over
    seeds, ticks at ``ks``."""
    fig = Figure(figsize=(FIGURE_INCHES, 4.0))
    ax = fig.subplots()
    topk = activation[activation.points.str.startswith("top")]
    for i, (stride, group) in enumerate(topk.groupby("stride")):
        stats = group.groupby("n_points").nme.agg(["mean", "std"])
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), fmt="o-", capsize=3, color=f"C{i}",
                    label=f"stride {stride}")
    ax.set_xscale("log")
    ax.set_xticks(list(ks), [str(k) for k in ks])
    ax.set(xlabel="activation points $k$ (top-$k$)", ylabel="test NME (%)",
           title="Decoding from $k$ activation points (mean ± s.d. over seeds)")
    ax.legend(title=STRIDE_LABEL)
    return fig


def mechanism_figure(logits, keypoints, codec, points, stride: int) -> Figure:
    """The 5x5 cells around each keypoint of ``points`` on the first face: the network's spatial
    softmax of ``logits`` (N, K, Hh, Wh) above the codec's expected target for ``keypoints``
    (N, K, 2, input pixels), the true position marked, one shared colour scale per keypoint."""
    p = logits.flatten(2).softmax(-1).view_as(logits)[0]
    expected = codec.expected_target(keypoints).heatmaps[0]
    uv = codec.to_heatmap(keypoints)[0]
    fig = Figure(figsize=(FIGURE_INCHES, 3.8))
    axes = fig.subplots(2, len(points))
    for j, k in enumerate(points):
        cx, cy = (int(v) for v in uv[k].floor())
        for row, (name, maps) in enumerate((("predicted", p), ("expected target", expected))):
            ax = axes[row, j]
            im = _cells_panel(ax, maps[k, cy - 2:cy + 3, cx - 2:cx + 3], (cx - 2.5, cx + 2.5, cy + 2.5, cy - 2.5),
                              uv[k], vmax=float(expected[k].max()), ms=10)
            if row == 0:
                ax.set_title(f"keypoint {k}", fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8, label="probability")
    fig.suptitle(f"5x5 cells around {len(points)} keypoints of a test face, stride {stride}\n(x: the true position)",
                 fontsize=10)
    return fig


def macs_figure(by_stride) -> Figure:
    """MACs of one forward pass against the heatmap stride, one line per network of
    ``by_stride`` (:func:`h3r.study.cost.macs_by_stride`), both axes logarithmic."""
    fig = Figure(figsize=(FIGURE_INCHES, 4.0))
    ax = fig.subplots()
    for (label, group), marker in zip(by_stride.groupby("network", sort=False), "osD"):
        ax.plot(group.stride, group["MACs (G)"], marker=marker, label=label)
    _stride_axis(ax, sorted(set(by_stride.stride)))
    ax.set_yscale("log")
    ax.set(title="Cost of one forward pass (98 landmarks) against heatmap resolution", xlabel=STRIDE_LABEL,
           ylabel="MACs (G, log scale)")
    ax.legend()
    return fig


def cost_figure(runs) -> Figure:
    """Test NME against MACs per image, one line per codec preset of ``runs``
    (:func:`h3r.study.cost.cost_study`), mean ± s.d. over seeds, each input size labelled above its
    points."""
    fig = Figure(figsize=(FIGURE_INCHES, 4.0))
    ax = fig.subplots()
    for (codec, group), marker in zip(runs.groupby("preset"), "os"):
        stats = group.groupby("GMACs")["NME (%)"].agg(["mean", "std"])
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker=marker, capsize=3, label=codec)
    for size, group in runs.groupby("input_size"):
        ax.annotate(f"{size} px", (group.GMACs.iloc[0], group["NME (%)"].max()), textcoords="offset points",
                    xytext=(0, 8), ha="center")
    ax.set_xscale("log")
    ax.set(xlabel="multiply-accumulates per image (G)", ylabel="test NME (%)", title="Accuracy against cost")
    ax.legend()
    return fig


def answers_figure(summary) -> Figure:
    """Test NME against the head's MACs per image, each method of ``summary``
    (:func:`h3r.study.answers.answers_summary`) a line over its resolutions (mean ± s.d. over seeds, each
    point labelled with its input pixels per cell or bin; a resolution-free method is one point),
    the Pareto front a dashed grey line through ringed points. The legend sits below the axes."""
    fig = Figure(figsize=(FIGURE_INCHES, 5.6), layout="constrained")
    ax = fig.subplots()
    for (method, group), marker in zip(summary.groupby("method", sort=False), itertools.cycle("osD^v<>pPX*h")):
        group = group.sort_values("head MACs")
        ax.errorbar(group["head MACs"] / 1e6, group.NME, yerr=group.sd.fillna(0), marker=marker, capsize=3,
                    label=method)
        for r in group.to_dict("records"):
            if r["resolution"] == r["resolution"]:  # NaN: resolution-free
                ax.annotate(f"{r['resolution']:g}", (r["head MACs"] / 1e6, r["NME"]), textcoords="offset points",
                            xytext=(4, 4), fontsize=8)
    front = summary[summary.pareto].sort_values("head MACs")
    ax.plot(front["head MACs"] / 1e6, front.NME, ls="--", color="0.5", zorder=0, label="Pareto front")
    ax.scatter(front["head MACs"] / 1e6, front.NME, s=160, facecolors="none", edgecolors="0.3", zorder=3)
    ax.set_xscale("log")
    ax.set(xlabel="head multiply-accumulates per image (M, log scale)", ylabel="test NME (%)",
           title="Accuracy against the head's cost")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=8, frameon=False)
    return fig
