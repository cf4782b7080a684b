"""h3r.reported: every number has a source and a known table, and the official README numbers
equal those parsed from the repository snapshot (skipped when the snapshot is absent)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from h3r.reported import (COLUMNS, MODELS_README, OFFICIAL_COMMIT, OFFICIAL_STRIDE, README, RECORDS,
                          TABLES, readme_nme, reported, tables)

REPO = Path(__file__).resolve().parents[1]
BOOK_PAGE = REPO / "book" / "paper_tables.md"
EXPECTED_TABLES = {"heatmap_resolution", "num_activation_points", "onehot_vs_gaussian", "loss",
                   "input_resolution_cost", "wflw", "300w", "cofw", "aflw", "mpii", "coco",
                   "official_readme"}
SOURCE_PATTERN = re.compile(r"^(https?://\S+|official README \(baoshengyu/H3R@[0-9a-f]{7,40}\), \S+)$")
README_DATASETS = ("WFLW", "LaPa", "300W", "AFLW2000-3D")  # as the README headings name them


# --- the records themselves -------------------------------------------------------------------

def test_table_ids_are_the_studys():
    assert set(TABLES) == EXPECTED_TABLES
    for table_id, info in TABLES.items():
        assert info.id == table_id
        assert info.title and info.compares and info.evidence and info.status and info.columns


def test_every_record_has_a_source_and_a_known_table():
    assert RECORDS, "no numbers recorded"
    for record in RECORDS:
        assert record.table in TABLES, record
        assert SOURCE_PATTERN.match(record.source), f"source is neither a URL nor the official README: {record}"
        assert record.unit and record.metric and record.subset, record


def test_no_duplicate_numbers():
    keys = [(r.table, r.dataset, r.backbone, r.bbox, r.input_size, r.train_set, r.metric, r.subset)
            for r in RECORDS]
    assert len(keys) == len(set(keys))


def test_official_heatmaps_are_at_stride_4():
    for record in reported("official_readme").itertuples():
        assert record.heatmap * OFFICIAL_STRIDE == record.input_size


def test_reported_filters_and_errors():
    nme = reported("official_readme", dataset="WFLW", metric="NME")
    assert isinstance(nme, pd.DataFrame) and list(nme.columns) == list(COLUMNS)
    assert set(nme["dataset"]) == {"WFLW"} and set(nme["metric"]) == {"NME"} and len(nme) == 5
    assert reported("official_readme", dataset="WFLW", metric="NME", bbox="P1", input_size=256)["value"].tolist() == [3.81]
    assert reported("cofw").empty  # described, but no number was found in a source
    with pytest.raises(ValueError, match="unknown table"):
        reported("wflw_main")
    with pytest.raises(ValueError, match="cannot filter"):
        reported("official_readme", datset="WFLW")


def test_tables_frame_counts_numbers():
    frame = tables().set_index("id")
    assert frame.loc["official_readme", "numbers"] == len(reported("official_readme")) > 0
    assert frame.loc["wflw", "numbers"] == 0


def test_book_page_mentions_every_table():
    text = BOOK_PAGE.read_text(encoding="utf-8")
    missing = [t for t in TABLES if f"`{t}`" not in text]
    assert not missing, f"{BOOK_PAGE.name} does not mention {missing}"
    assert "not found in the sources available" in text


# --- against the official repository snapshot ---------------------------------------------------

def git_show(snapshot: Path, path: str) -> str:
    """A file of the official repository at the recorded commit; skips when it cannot be read."""
    result = subprocess.run(["git", "--git-dir", str(snapshot), "show", f"{OFFICIAL_COMMIT}:{path}"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot read {path} at {OFFICIAL_COMMIT} from {snapshot}: {result.stderr.strip()}")
    return result.stdout


def readme_rows(markdown: str) -> list[dict]:
    """The rows of every markdown table, each a dict keyed by its header, plus the dataset named
    by the nearest heading above it."""
    rows, header, dataset = [], None, None
    for line in markdown.splitlines():
        if line.startswith("#"):
            dataset = next((d for d in README_DATASETS if d in line), dataset)
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not all(set(c) <= set(":-") for c in cells):
            rows.append({"dataset": dataset, **dict(zip(header, cells))})
    return rows


def as_numbers(rows: list[dict]) -> set[tuple]:
    """(dataset, train set, backbone, bbox, input, metric, value) for every number of the rows."""
    numbers = set()
    for row in rows:
        width, height = (int(v) for v in row["Resolution"].split("x"))
        assert width == height, row
        key = (row["dataset"], row.get("TrainSet"), row["Backbone"], row["BBox"], width)
        numbers |= {key + ("Params", float(row["#Params"].rstrip("M"))),
                    key + ("FLOPs", float(row["FLOPs"].rstrip("G"))),
                    key + ("NME", float(row["NME (%)"]))}
    return numbers


@pytest.mark.parametrize("path, source", [("README.md", README), ("models/README.md", MODELS_README)])
def test_official_readme_numbers_match_snapshot(official_snapshot, path, source):
    rows = readme_rows(git_show(official_snapshot, path))
    assert rows, f"no table found in {path}"
    recorded = {(r.dataset, r.train_set, r.backbone, r.bbox, r.input_size, r.metric, r.value)
                for r in RECORDS if r.source == source}
    parsed = as_numbers(rows)  # a README names the training set only where it is not the test set's own
    assert parsed == recorded, (
        f"records differ from {path}: missing {sorted(parsed - recorded)}, extra {sorted(recorded - parsed)}")


def config_values(text: str) -> dict:
    return dict(re.findall(r"^\s*(ARCH|PROJ_CHANNEL|OUT_CHANNEL|TOPK):\s*'?(\w+)'?", text, re.M))


def test_parameter_counts_differ_only_by_the_last_convolution(official_snapshot):
    """#Params differ between datasets only through the head's last 1x1 conv (C -> 2K, no bias)."""
    configs = {"WFLW": "models/wflw/hrnet18_256x256_p2", "LaPa": "models/lapa/hrnet18_256x256_p2",
               "300W": "models/300w/hrnet18_256x256_p2"}
    backbones = {"HRNet-W18": "hrnet18", "MobileNetV2": "mobilenet"}
    params = reported("official_readme", metric="Params", input_size=256)
    for backbone, stem in backbones.items():
        cfg = {d: config_values(git_show(official_snapshot, f"{p.replace('hrnet18', stem)}/config.yaml")) for d, p in configs.items()}
        count = {d: params[(params.dataset == d) & (params.backbone == backbone)]["value"].iloc[0] for d in configs}
        for a, b in [("WFLW", "300W"), ("LaPa", "WFLW"), ("LaPa", "300W")]:
            channels = int(cfg[a]["PROJ_CHANNEL"])
            assert channels == int(cfg[b]["PROJ_CHANNEL"])
            predicted = channels * 2 * (int(cfg[a]["OUT_CHANNEL"]) - int(cfg[b]["OUT_CHANNEL"])) / 1e6
            # both counts are rounded to 0.01 M, so their difference is known to +-0.01 M
            assert abs((count[a] - count[b]) - predicted) <= 0.01 + 1e-9, (backbone, a, b)


def test_snapshot_decodes_from_top_9_at_stride_4(official_snapshot):
    assert re.search(r"_C\.HEATMAP\.STRIDE\s*=\s*4\.0", git_show(official_snapshot, "torchalign/cfg.py"))
    listing = subprocess.run(["git", "--git-dir", str(official_snapshot), "ls-tree", "-r", "--name-only", OFFICIAL_COMMIT],
                             capture_output=True, text=True, check=True).stdout.split()
    configs = [p for p in listing if p.endswith("config.yaml")]
    assert len(configs) >= 14
    for path in configs:
        assert config_values(git_show(official_snapshot, path)).get("TOPK") == "9", path


def test_every_table_names_a_notebook_of_the_book():
    from h3r.book.runner import toc_notebooks

    book = set(toc_notebooks())
    for table in TABLES.values():
        assert table.notebook in book, f"{table.id}: {table.notebook} is not a chapter of the book"


def test_readme_nme_is_one_row_per_box_beside_a_benchmark_table():
    table = readme_nme("WFLW")
    assert list(table.columns) == ["NME (%)"]
    assert list(table.index) == ["H3R, HRNet-W18, reported (official README, box P1)",
                                 "H3R, HRNet-W18, reported (official README, box P2)"]
    rows = reported("official_readme", dataset="WFLW", metric="NME", backbone="HRNet-W18")
    assert list(table["NME (%)"]) == list(rows.value)
    assert list(readme_nme("300W").index.str[-3:-1]) == ["P1", "P2"]
    with pytest.raises(ValueError, match="several MobileNetV2 models for 300W on one box"):
        readme_nme("300W", backbone="MobileNetV2")  # 256 and 128 px, both on P2
