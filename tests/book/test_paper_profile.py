"""The paper profile stays runnable: every notebook of the book executes under ``paper`` on the
CPU with a step cap, against datasets in the official formats, so that a GPU run cannot discover
a broken notebook hours in. The grids are narrowed (chapter 5 at stride 4 with two seeds, so
that the paired intervals the smoke profile's one seed never forms are computed, whose runs
chapters 6, 13, 14 and the findings read back, and chapter 15 likewise on the pose benchmark; one
seed and codec elsewhere), every run is one step of one image, and the Monte Carlo sizes are cut
(the smoke profile covers two strides); every
code path of the profile still runs: HRNet-W18 at 256 px, the paper's strides and codecs, the
real-dataset chapter with data."""
from __future__ import annotations

import nbformat
import pytest

from h3r.book import runner
from tests.fixtures import write_300w, write_aflw, write_cofw, write_coco, write_mpii, write_wflw

#: one optimizer step of one image per run, evaluated on one batch: the least work that still runs
#: every code path of a run (a larger batch only repeats them)
STEP_CAP = {"max_steps": 1, "batch_size": 1}
#: chapter 5 and the notebooks that read its runs back, and chapter 7's, which the findings read
#: back too (run in this order, in one worker)
READ_BACK = ("05_heatmap_resolution", "06_ablations", "07_cost", "13_other_answers", "14_questions",
             "15_human_pose", "00_findings")
#: per notebook: the parameters that make the paper profile a CPU check
OVERRIDES = {
    "00_findings": {**STEP_CAP, "strides": [4], "seeds": [0, 1], "published_seeds": [0], "answer_strides": [4],
                    "input_sizes": [128], "cost_seeds": [0], "pose_strides": [4],
                    "answer_learning_rates": [1e-3]},
    "01_quantization_error": {"strides": [4, 16], "n_points": 500, "cell_budget": 2**20, "draws": 50,
                              "nme_strides": [4, 16], "synthetic_faces": 4},
    "02_unbiasedness": {"n_points": 16, "max_draws": 64},
    "03_codecs": {"batch": 4, "keypoints": 8, "heatmap": 16, "repeats": 2},
    "04_synthetic_benchmark": STEP_CAP,
    "05_heatmap_resolution": {**STEP_CAP, "strides": [4], "seeds": [0, 1], "published_seeds": [0]},
    "06_ablations": {**STEP_CAP, "study_strides": [4], "study_seeds": [0, 1], "ablation_seeds": [0],
                     "ks": [1, 9], "windows": [1]},
    "07_cost": {**STEP_CAP, "input_sizes": [128], "seeds": [0]},
    "08_benchmarks": {**STEP_CAP, "codecs": ["h3r"], "seeds": [0]},
    "09_official": {},
    "10_reproduce": {},
    "11_your_own_loop": {"steps": 2},
    "13_other_answers": {**STEP_CAP, "strides": [4], "seeds": [0], "decode_batch": 2, "learning_rates": [1e-3]},
    "14_questions": {**STEP_CAP, "strides": [4], "seeds": [0], "two_channel_seeds": [0]},
    "15_human_pose": {**STEP_CAP, "strides": [4], "seeds": [0, 1], "published_seeds": [0, 1],
                      "published_strides": [4]},
}


@pytest.fixture(scope="module")
def paper_world(tmp_path_factory):
    """A data root with every benchmark of chapter 8 in its official format, and a runs folder."""
    root = tmp_path_factory.mktemp("paper")
    for write in (write_wflw, write_300w, write_cofw, write_aflw, write_mpii, write_coco):
        write(root / "data")
    return root


def test_every_book_notebook_has_its_paper_check():
    assert set(OVERRIDES) == set(runner.toc_notebooks())


@pytest.mark.slow
@pytest.mark.parametrize("stem", runner.execution_order(sorted(OVERRIDES)))  # findings read back
def test_the_notebook_runs_under_the_paper_profile_with_a_step_cap(stem, paper_world, monkeypatch):
    monkeypatch.setenv("H3R_RUNS", str(paper_world / "runs"))
    parameters = {"profile": "paper", "device": "cpu", **OVERRIDES[stem]}
    declared = runner.declared_parameters(runner.NOTEBOOKS / f"{stem}.ipynb")
    if "data_root" in declared:
        parameters["data_root"] = str(paper_world / "data")
    out = paper_world / f"{stem}.ipynb"
    runner.execute(runner.NOTEBOOKS / f"{stem}.ipynb", out, {k: v for k, v in parameters.items() if k in declared},
                   progress=False)
    cells = nbformat.read(out, as_version=4).cells
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors and any(c.get("outputs") for c in cells)
