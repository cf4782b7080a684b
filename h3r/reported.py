"""The numbers reported for H3R, as data, each with the source it was read from.

Two kinds of sources exist: the paper (Yu & Tao, "Heatmap Regression via Randomized Rounding",
IEEE TPAMI 2021, arXiv 2009.00225v2) and the official repository's READMEs (baoshengyu/H3R).
Only numbers read in a source are recorded; a table whose numbers could not be read is still
described in :data:`TABLES`, with ``status`` saying so. The book page ``book/paper_tables.md``
is the prose version of this module and names every source.

    >>> from h3r.reported import reported
    >>> reported("official_readme", dataset="WFLW", metric="NME")      # a pandas DataFrame
"""
from __future__ import annotations

from h3r._extras import require

require("train", "h3r.reported")

from dataclasses import asdict, dataclass, fields

import pandas as pd

from h3r.models.official import OFFICIAL_STRIDE

OFFICIAL_REPO = "baoshengyu/H3R"
OFFICIAL_COMMIT = "52a8bde"  # HEAD of the snapshot read, 52a8bde2efd4d77ce3ca76dd248610736245b29e
README = f"official README ({OFFICIAL_REPO}@{OFFICIAL_COMMIT}), README.md"
MODELS_README = f"official README ({OFFICIAL_REPO}@{OFFICIAL_COMMIT}), models/README.md"

# Every official model predicts heatmaps at 1/4 of the input (OFFICIAL_STRIDE): torchalign/cfg.py
# sets HEATMAP.STRIDE = 4.0 and both backbones (HRNet-W18, the truncated MobileNetV2) end at stride 4.


@dataclass(frozen=True)
class Reported:
    """One reported number.

    table: an id of :data:`TABLES`. source: a URL, or ``official README (repo@commit), path``.
    input_size: square input side in pixels; heatmap: square heatmap side (None if not stated).
    metric: the source's column name (``NME``, ``Params``, ``FLOPs``, ...); unit: ``%``, ``M``, ``G``.
    subset: the test split or subset the number is for. bbox: ``P1``/``P2`` (see the book page).
    train_set: the training set when it differs from the test dataset's own training split.
    """

    table: str
    source: str
    dataset: str
    method: str
    backbone: str
    input_size: int
    heatmap: int | None
    metric: str
    subset: str
    value: float
    unit: str
    bbox: str | None = None
    train_set: str | None = None
    note: str = ""


@dataclass(frozen=True)
class TableInfo:
    """An experimental table or figure of the paper (or the official README), described.

    paper_ref: its number and caption in the paper where a source gave them, else what is known.
    evidence: what the sources reached confirm about it, each claim with its source.
    notebook: the h3r notebook (under ``notebooks/``) that regenerates it. status: where it stands.
    """

    id: str
    title: str
    compares: str
    datasets: str
    columns: tuple[str, ...]
    paper_ref: str
    evidence: str
    notebook: str | None
    status: str


NOT_FOUND = "numbers not found in the sources available (the paper's full text was not reachable)"

TABLES: dict[str, TableInfo] = {t.id: t for t in (
    TableInfo(
        "heatmap_resolution", "Accuracy against heatmap resolution",
        "vanilla (integer) heatmap regression vs randomized-rounding encoding/decoding as the "
        "heatmap resolution (stride) changes", "not confirmed", ("heatmap resolution", "NME"),
        "table/figure number and caption not found",
        "the abstract (arxiv.org/abs/2009.00225v2) frames the trade-off between heatmap resolution, "
        "accuracy and cost; hwhale.com/article/319951 gives the example input 256 / heatmap 64, "
        "scale factor s = 4", "05_heatmap_resolution", NOT_FOUND),
    TableInfo(
        "num_activation_points", "Number of activation points used by the decoder",
        "decoding from k activation points (k = 1 is argmax) and the activation-point selection",
        "not confirmed", ("k", "NME"), "table/figure number and caption not found",
        "hwhale.com/article/319951 and coreui.cn/news/9029.html: the paper proposes two ways to "
        "select activation points, the prediction being their activation-weighted sum; the "
        "official code decodes from the top k = 9 (every config.yaml, HEATMAP.TOPK)",
        "06_ablations", NOT_FOUND),
    TableInfo(
        "onehot_vs_gaussian", "Binary (one-hot) vs Gaussian ground-truth heatmaps",
        "the shape of the target around the randomly rounded activation point", "not confirmed",
        ("target", "NME"), "table/figure number and caption not found",
        "github.com/baoshengyu/H3R/issues/7 (a reader): the paper describes two ways to build the "
        "heatmap, binary and Gaussian; the official head (BinaryHeadBlock) and decoder "
        "(BinaryHeatmap2Coordinate) are binary", "06_ablations", NOT_FOUND),
    TableInfo(
        "loss", "Training loss", "loss functions for the heatmap head", "not confirmed",
        ("loss", "NME"), "not confirmed that such a table exists",
        "no source reached states the loss; the official head outputs 2 logits per pixel "
        "(background, foreground), consistent with a per-pixel 2-class cross-entropy "
        "(an inference, also made by a reader in github.com/baoshengyu/H3R/issues/7)",
        "06_ablations", NOT_FOUND),
    TableInfo(
        "input_resolution_cost", "Input resolution against accuracy and cost",
        "input size (hence heatmap size at stride 4) against NME, #Params and FLOPs", "WFLW (README)",
        ("input", "#Params", "FLOPs", "NME"), "paper table not found; the official README has a "
        "MobileNetV2 row at 256/160/128 on WFLW and 256/128 on LaPa and 300W",
        "README.md and models/README.md of baoshengyu/H3R@52a8bde (see official_readme)",
        "07_cost", "paper numbers not found; README numbers recorded under official_readme"),
    TableInfo(
        "wflw", "Comparison with the state of the art on WFLW",
        "H3R against published facial landmark detectors", "WFLW (98 landmarks)",
        ("method", "NME"), "table number and columns not found",
        "the abstract (v2) lists WFLW among the facial landmark datasets", "08_benchmarks", NOT_FOUND),
    TableInfo(
        "300w", "Comparison with the state of the art on 300W",
        "H3R against published facial landmark detectors", "300W (68 landmarks)",
        ("method", "NME"), "table number and columns not found",
        "the abstract (v2) lists 300W", "08_benchmarks", NOT_FOUND),
    TableInfo(
        "cofw", "Comparison with the state of the art on COFW",
        "H3R against published facial landmark detectors", "COFW",
        ("method", "NME"), "table number and columns not found",
        "the abstract (v2) lists COFW", "08_benchmarks", NOT_FOUND),
    TableInfo(
        "aflw", "Comparison with the state of the art on AFLW",
        "H3R against published facial landmark detectors", "AFLW",
        ("method", "NME"), "table number and columns not found",
        "the abstract (v2) lists AFLW", "08_benchmarks", NOT_FOUND),
    TableInfo(
        "mpii", "Human pose estimation on MPII", "H3R against heatmap decoders / pose estimators",
        "MPII", ("method", "metric not confirmed"), "table number and columns not found",
        "the v2 abstract lists MPII (the v1 abstract, arxiv.org/abs/2009.00225v1, has only the "
        "four facial datasets)", "08_benchmarks", NOT_FOUND),
    TableInfo(
        "coco", "Human pose estimation on COCO", "H3R against heatmap decoders / pose estimators",
        "COCO keypoints", ("method", "metric not confirmed"), "table number and columns not found",
        "the v2 abstract lists COCO (not in v1)", "08_benchmarks", NOT_FOUND),
    TableInfo(
        "official_readme", "Official pretrained models (repository README, not the paper)",
        "HRNet-W18 vs MobileNetV2, face box protocol P1 vs P2, input 256/160/128",
        "WFLW, LaPa, 300W, AFLW2000-3D (trained on 300W-LP)",
        ("Backbone", "BBox", "Resolution", "#Params", "FLOPs", "NME (%)"),
        "not a paper table",
        "README.md and models/README.md of baoshengyu/H3R@52a8bde, checked against the snapshot "
        "by tests/test_reported.py", "09_official",
        "numbers recorded; regenerating them needs the pretrained weights (Git LFS / Google "
        "Drive, absent from the snapshot) and the test sets"),
)}


def _readme(source: str, dataset: str, backbone: str, bbox: str, size: int, params: float,
            flops: float, nme: float, *, train_set: str | None = None, note: str = "") -> list[Reported]:
    """The three numbers of one README row: #Params (M), FLOPs (G) and NME (%)."""
    common = dict(table="official_readme", source=source, dataset=dataset, method="H3R",
                  backbone=backbone, input_size=size, heatmap=size // OFFICIAL_STRIDE,
                  subset="test", bbox=bbox, train_set=train_set, note=note)
    return [Reported(metric="Params", value=params, unit="M", **common),
            Reported(metric="FLOPs", value=flops, unit="G", **common),
            Reported(metric="NME", value=nme, unit="%", **common)]


_WFLW = "NME by the inter-ocular distance (landmarks 60, 72), examples/test_wflw.py"
_LAPA = "NME by the distance of landmarks 66 and 79, examples/test_lapa.py"
_300W = ("NME by the distance of landmarks 36 and 45, examples/test_300w.py; the split listed in "
         "data/F300W/test.txt is not documented")
_AFLW = ("68 landmarks from pt3d_68 (x, y); NME by sqrt(w*h) of the landmarks' box, "
         "examples/test_aflw2000.py")

RECORDS: tuple[Reported, ...] = tuple(
    _readme(README, "WFLW", "HRNet-W18", "P1", 256, 9.69, 4.84, 3.81, note=_WFLW)
    + _readme(README, "WFLW", "HRNet-W18", "P2", 256, 9.69, 4.84, 3.95, note=_WFLW)
    + _readme(README, "WFLW", "MobileNetV2", "P2", 256, 0.60, 0.51, 4.45, note=_WFLW)
    + _readme(README, "WFLW", "MobileNetV2", "P2", 160, 0.60, 0.20, 4.58, note=_WFLW)
    + _readme(README, "WFLW", "MobileNetV2", "P2", 128, 0.60, 0.13, 4.72, note=_WFLW)
    + _readme(README, "LaPa", "HRNet-W18", "P2", 256, 9.69, 4.86, 1.40, note=_LAPA)
    + _readme(README, "LaPa", "MobileNetV2", "P2", 256, 0.60, 0.52, 1.69, note=_LAPA)
    + _readme(README, "LaPa", "MobileNetV2", "P2", 128, 0.60, 0.13, 2.08, note=_LAPA)
    + _readme(MODELS_README, "300W", "HRNet-W18", "P1", 256, 9.67, 4.77, 3.48, note=_300W)
    + _readme(MODELS_README, "300W", "HRNet-W18", "P2", 256, 9.67, 4.77, 3.62, note=_300W)
    + _readme(MODELS_README, "300W", "MobileNetV2", "P2", 256, 0.59, 0.47, 3.96, note=_300W)
    + _readme(MODELS_README, "300W", "MobileNetV2", "P2", 128, 0.59, 0.12, 4.17, note=_300W)
    + _readme(MODELS_README, "AFLW2000-3D", "HRNet-W18", "P2", 128, 9.67, 1.19, 3.04,
              train_set="300W-LP", note=_AFLW)
    + _readme(MODELS_README, "AFLW2000-3D", "MobileNetV2", "P2", 128, 0.59, 0.12, 3.21,
              train_set="300W-LP", note=_AFLW)
)

COLUMNS = tuple(f.name for f in fields(Reported))


def reported(table: str | None = None, **filters) -> pd.DataFrame:
    """The recorded numbers as a DataFrame (one row per number, columns :data:`COLUMNS`).

    ``table`` selects a :data:`TABLES` id; every other keyword filters a column by equality,
    e.g. ``reported("official_readme", dataset="WFLW", metric="NME", bbox="P2")``. A table with
    no recorded numbers gives an empty frame (its :data:`TABLES` entry says why).
    """
    if table is not None and table not in TABLES:
        raise ValueError(f"unknown table {table!r}; known tables: {sorted(TABLES)}")
    unknown = set(filters) - set(COLUMNS)
    if unknown:
        raise ValueError(f"cannot filter on {sorted(unknown)}; columns are {list(COLUMNS)}")
    frame = pd.DataFrame([asdict(r) for r in RECORDS], columns=list(COLUMNS))
    if table is not None:
        filters["table"] = table
    for column, value in filters.items():
        frame = frame[frame[column] == value]
    return frame.reset_index(drop=True)


def tables() -> pd.DataFrame:
    """:data:`TABLES` as a DataFrame, one row per table, with the count of recorded numbers."""
    counts = pd.Series([r.table for r in RECORDS]).value_counts()
    rows = [{**asdict(t), "numbers": int(counts.get(t.id, 0))} for t in TABLES.values()]
    return pd.DataFrame(rows)


def readme_nme(dataset: str, backbone: str = "HRNet-W18") -> pd.DataFrame:
    """The official README's NME for ``dataset`` (``"WFLW"``, ``"300W"``, ...) with ``backbone``,
    one row per face box protocol, as a benchmark table shows it beside its own columns: the
    row says whose number it is and on which box, the one column is ``"NME (%)"``. Raises
    ValueError where the README has several such models on one box (at other input sizes)."""
    rows = reported("official_readme", dataset=dataset, metric="NME", backbone=backbone)
    if rows.bbox.duplicated().any():
        raise ValueError(f"the README has several {backbone} models for {dataset} on one box: "
                         f"input sizes {sorted(rows.input_size)}")
    label = "H3R, {}, reported (official README, box {})"
    return pd.DataFrame({label.format(backbone, r.bbox): {"NME (%)": r.value} for r in rows.itertuples()}).T
