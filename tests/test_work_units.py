"""make test's work units (the root conftest.py): what must share a pytest-xdist worker does."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).resolve().parents[1] / "conftest.py")
_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_root)
work_unit = _root.work_unit


def test_a_notebooks_cells_share_a_unit_and_the_training_notebooks_share_one():
    assert work_unit("notebooks/01_quantization_error.ipynb::Cell 0") == \
        work_unit("notebooks/01_quantization_error.ipynb::Cell 9") == "notebooks/01_quantization_error.ipynb"
    assert work_unit("notebooks/05_heatmap_resolution.ipynb::Cell 3") == \
        work_unit("notebooks/00_findings.ipynb::Cell 1") == "smoke-runs"


def test_chapter_5s_paper_check_shares_a_unit_with_its_readers_only():
    check = "tests/book/test_paper_profile.py::test_the_notebook_runs_under_the_paper_profile_with_a_step_cap"
    readers = ("06_ablations", "07_cost", "13_other_answers", "14_questions", "15_human_pose", "00_findings")
    assert {work_unit(f"{check}[{stem}]") for stem in ("05_heatmap_resolution", *readers)} == {"paper-study"}
    assert work_unit(f"{check}[08_benchmarks]") == f"{check}[08_benchmarks]"
    assert work_unit("tests/test_metrics.py::test_auc") == "tests/test_metrics.py::test_auc"
