"""Chapter 15: chapter 5's design on the pose benchmark (h3r.study.pose), on hand-made
predictions and made-up run tables."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from h3r.profiles import chapter
from h3r.stats import without_terms
from h3r.study import findings, pose, resolution


def predictions(offset: float, n: int = 6, head: float = 10.0, seed: int = 0) -> dict:
    """Hand-made predictions of n figures: every joint ``offset`` px to the right of the truth,
    head size ``head`` px, every joint visible, every score 1."""
    gt = torch.rand(n, 16, 2, generator=torch.Generator().manual_seed(seed)) * 100 + 20
    return {"pred": gt + torch.tensor([offset, 0.0]), "gt": gt, "visible": torch.ones(n, 16),
            "normalizer": torch.full((n,), head), "scores": torch.ones(n, 16)}


def test_pose_scores_of_hand_made_predictions():
    exact = pose.pose_scores(predictions(0.0))
    assert exact["PCKh@0.5"] == exact["PCKh@0.1"] == exact["AP"] == pytest.approx(100.0)
    assert all(exact[g] == pytest.approx(100.0) for g in pose.GROUPS)
    three_px = pose.pose_scores(predictions(3.0))  # within 0.5 x 10 px, beyond 0.1 x 10 px
    assert three_px["PCKh@0.5"] == pytest.approx(100.0) and three_px["PCKh@0.1"] == pytest.approx(0.0)
    assert 0.0 < three_px["AP"] < 100.0
    six_px = pose.pose_scores(predictions(6.0))
    assert six_px["PCKh@0.5"] == pytest.approx(0.0) and six_px["AP"] < three_px["AP"]


def pose_table(values: dict[tuple[str, int], list[float]]) -> pd.DataFrame:
    """Rows of a pose resolution study: (method, stride) -> PCKh@0.1 per seed, the other metrics
    a point below it."""
    return pd.DataFrame([{"method": m, "codec": m, "heatmap_stride": s, "seed": seed, "decoder_only": False,
                          "PCKh@0.1": v, "PCKh@0.5": v + 40, "AP": v - 1}
                         for (m, s), per_seed in values.items() for seed, v in enumerate(per_seed)])


def test_pose_differences_judge_the_claim_of_a_higher_score():
    rows = pose_table({("onehot-round", 4): [10.0, 11.0, 12.0], ("h3r", 4): [14.0, 15.2, 15.9],
                       ("onehot-round", 8): [5.0, 6.0, 7.0], ("h3r", 8): [4.0, 4.8, 6.1]})
    diffs = pose.pose_differences(rows).set_index(["metric", "heatmap_stride"])
    assert set(diffs.index.get_level_values("metric")) == set(pose.POSE_METRICS)
    assert diffs.loc[("PCKh@0.1", 4)].verdict == "supported"      # h3r higher: the claim holds
    assert diffs.loc[("PCKh@0.1", 8)].verdict == "contradicted"   # h3r lower
    assert diffs.loc[("AP", 4)]["mean"] == pytest.approx(diffs.loc[("PCKh@0.1", 4)]["mean"])
    answer = without_terms(pose.pose_answer(rows))
    assert "PCKh@0.1 supported at stride 4; contradicted at stride 8" in answer
    assert "*The highest at stride 4*: PCKh@0.1 `h3r`" in answer


def test_pose_findings_state_h3r_against_its_control_per_metric():
    rows = pose_table({("onehot-round", 4): [10.0, 11.0, 12.0], ("h3r", 4): [14.0, 15.2, 15.9]})
    found = pose.pose_findings(rows)
    assert [claim.split(" than")[0].rsplit(" ", 1)[-1] for claim, *_ in found] == list(pose.POSE_METRICS)
    assert all(result == "supported at every stride" and chapter == "[15](15_human_pose.ipynb)"
               for _, chapter, _, result in found)


def test_agreement_says_where_faces_and_pose_disagree():
    assert pose.agreement({4: "supported", 8: "supported"}, {4: "supported", 8: "supported"}) == \
        ("the same verdict at strides 4, 8", "supported")
    numbers, result = pose.agreement({2: "not shown", 4: "supported", 16: "degenerate"},
                                     {2: "not shown", 4: "not shown", 16: "supported"})
    assert result == "not supported"
    assert numbers == "the same verdict at stride 2; stride 4: faces supported, pose within noise"


def test_findings_carry_the_pose_rows_and_the_agreement(monkeypatch):
    faces = pd.DataFrame([{"method": m, "codec": m, "heatmap_stride": 4, "seed": seed, "decoder_only": False,
                           "NME (%)": v} for m, per_seed in {"onehot-round": [8.0, 8.5, 9.0],
                                                              "h3r": [6.0, 6.4, 7.1]}.items()
                          for seed, v in enumerate(per_seed)])
    figures = pose_table({("onehot-round", 4): [10.0, 11.0, 12.0], ("h3r", 4): [10.5, 10.2, 12.9]})
    table = findings.findings(faces, None, None, {"round_per_stride": 0.38, "floor_over_round": 2.0,
                                                  "mean_error": 0.0, "noise": 1.0, "lossless": 0.0, "draws": 1,
                                                  "stride": 4}, pose=(figures, None))
    pose_rows = table[table.evidence.str.contains("15_human_pose")]
    assert len(pose_rows) == 4
    agree = pose_rows[pose_rows.claim.str.startswith("(beyond the paper) Faces and pose")].iloc[0]
    assert agree.verdict == "not supported" and "faces supported, pose within noise" in agree["key numbers"]


def test_one_design_for_both_benchmarks():
    """Chapter 15 runs chapter 5's study with the pose benchmark: the same families, the same
    function, another dataset and its own published codec."""
    faces, figures = chapter("heatmap_resolution", "cpu"), chapter("human_pose", "cpu")
    assert (faces.base.dataset, figures.base.dataset) == ("synthetic_faces", "synthetic_pose")
    assert {k: v for k, v in vars(faces.base).items() if k != "dataset"} == \
        {k: v for k, v in vars(figures.base).items() if k != "dataset"}
    codecs = resolution.study_codecs(figures.as_published)
    assert codecs == resolution.study_codecs(False) + ["udp"]
    assert pose.MSRA.split(" on ") in [list(pair) for pair in resolution.DECODER_ONLY]
    assert figures.published_seeds == figures.seeds and figures.published_strides == figures.strides


def test_oks_sigma_text_names_each_sigma_and_the_joints_left_out():
    text = pose.oks_sigma_text()
    assert "r_shoulder, l_shoulder 0.079" in text and "r_ankle, l_ankle 0.089" in text
    assert text.endswith("left out (no COCO sigma): pelvis, thorax, upper_neck, head_top.")


def test_with_pose_metrics_read_each_rows_predictions(tmp_path):
    paths = []
    for offset in (0.0, 3.0):
        path = tmp_path / f"{offset}.pt"
        torch.save(predictions(offset), path)
        paths.append(str(path))
    rows = pd.DataFrame({"method": ["a", "b"], "predictions": paths})
    scored = pose.with_pose_metrics(rows)
    assert list(scored["PCKh@0.1"]) == pytest.approx([100.0, 0.0])
    assert pose.mean_head_size(scored) == pytest.approx(10.0)


def test_the_local_decoding_is_read_against_the_matched_control_and_in_the_findings():
    rows = pose_table({("onehot-round", 4): [10.0, 11.0, 12.0], ("h3r", 4): [8.0, 8.4, 9.9],
                       (pose.LOCAL, 4): [13.0, 14.1, 15.2]})
    rows.loc[rows.method == pose.LOCAL, "decoder_only"] = True
    answer = without_terms(pose.pose_answer(rows))
    assert "**H3R's network decoded locally** (`h3r-window on h3r`" in answer
    assert "PCKh@0.1 supported at every stride" in answer.split("decoded locally")[1]
    found = dict((claim, result) for claim, _, _, result in pose.pose_findings(rows))
    local = next(claim for claim in found if "3×3 window" in claim)
    assert found[local] == "supported at every stride"
    assert ("h3r-window", "h3r") in pose.POSE_DECODER_ONLY and set(resolution.DECODER_ONLY) < set(pose.POSE_DECODER_ONLY)
