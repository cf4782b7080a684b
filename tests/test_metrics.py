"""Every metric on cases small enough to compute by hand; the arithmetic is written next to each."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from pycocotools.coco import COCO

from h3r.data.layouts import AFLW19, COCO17, IBUG68, MPII16, MPII16_NAMES, WFLW98, Layout
from h3r.metrics import (
    BOX_AREA_SHARE, COCO_KEYPOINT_STATS, auc, ced_curve, coco_keypoint_ap, failure_rate, keypoint_ap, landmark_box,
    mpii_pckh_table, nme, normalizer_from_layout, oks_sigmas, pckh, summarize,
)

NAN = float("nan")


# --- NME --------------------------------------------------------------------------------------

def test_nme_by_hand_with_an_invisible_nan_point():
    gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]],
                       [[0.0, 0.0], [5.0, 5.0], [NAN, NAN]]])
    pred = gt.clone()
    pred[0] += torch.tensor([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]])  # errors 5, 0, 10
    pred[1, :2] += torch.tensor([[1.0, 0.0], [0.0, -3.0]])          # errors 1, 3
    visible = torch.tensor([[1, 1, 1], [1, 1, 0]])
    out = nme(pred, gt, torch.tensor([10.0, 8.0]), visible)
    # sample 0: (5 + 0 + 10) / 3 / 10 = 0.5;  sample 1: (1 + 3) / 2 / 8 = 0.25 (NaN point ignored)
    assert out.shape == (2,) and out.dtype == torch.float64
    torch.testing.assert_close(out, torch.tensor([0.5, 0.25], dtype=torch.float64))


def test_nme_all_visible_by_default_and_numpy_inputs():
    gt = np.zeros((1, 2, 2))
    pred = np.array([[[3.0, 4.0], [0.0, 1.0]]])  # errors 5 and 1, mean 3
    assert nme(pred, gt, np.array([2.0])).item() == pytest.approx(1.5)


@pytest.mark.parametrize("bad", [0.0, -1.0, NAN, math.inf])
def test_nme_rejects_a_bad_normalizer_naming_the_sample(bad):
    gt = torch.zeros(3, 2, 2)
    with pytest.raises(ValueError, match="normalizer of sample 1"):
        nme(gt, gt, torch.tensor([1.0, bad, 1.0]))


def test_nme_rejects_non_finite_visible_points_and_empty_samples():
    gt = torch.zeros(2, 3, 2)
    pred = gt.clone()
    pred[1, 2, 0] = NAN
    with pytest.raises(ValueError, match="pred: keypoint 2 of sample 1"):
        nme(pred, gt, torch.ones(2))
    assert nme(pred, gt, torch.ones(2), torch.tensor([[1, 1, 1], [1, 1, 0]])).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="sample 0 has no visible keypoint"):
        nme(gt, gt, torch.ones(2), torch.tensor([[0, 0, 0], [1, 1, 1]]))


def test_nme_checks_shapes():
    with pytest.raises(ValueError, match=r"pred must have shape \(2, 3, 2\)"):
        nme(torch.zeros(2, 4, 2), torch.zeros(2, 3, 2), torch.ones(2))
    with pytest.raises(ValueError, match=r"visible must have shape \(2, 3\)"):
        nme(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.ones(2), torch.ones(3))
    with pytest.raises(ValueError, match=r"normalizer must have shape \(2,\)"):
        nme(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.ones(2, 1))


# --- normalisers ------------------------------------------------------------------------------

def test_inter_ocular_uses_the_outer_eye_corners():
    gt = torch.zeros(2, 98, 2)
    gt[:, 36] = torch.tensor([10.0, 20.0])
    gt[:, 45] = torch.tensor([[40.0, 60.0], [10.0, 27.0]])  # |(30, 40)| = 50, |(0, 7)| = 7
    torch.testing.assert_close(normalizer_from_layout(IBUG68, gt[:, :68]),
                               torch.tensor([50.0, 7.0], dtype=torch.float64))
    gt[:, 60] = torch.tensor([1.0, 1.0])
    gt[:, 72] = torch.tensor([7.0, 9.0])  # |(6, 8)| = 10
    torch.testing.assert_close(normalizer_from_layout(WFLW98, gt), torch.full((2,), 10.0, dtype=torch.float64))


def test_inter_pupil_uses_eye_centroids():
    gt = torch.zeros(1, 98, 2)
    gt[0, 36:42] = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0], [1.0, 0.0], [1.0, 2.0]])
    gt[0, 42:48] = gt[0, 36:42] + torch.tensor([3.0, 4.0])
    # 300W: centroids of the eye contours 36-41, (1, 1), and 42-47, (4, 5): distance |(3, 4)| = 5
    assert normalizer_from_layout(IBUG68, gt[:, :68], rule="inter_pupil").item() == pytest.approx(5.0)
    gt[0, 96], gt[0, 97] = torch.tensor([10.0, 10.0]), torch.tensor([10.0, 22.0])  # WFLW pupils: 12
    assert normalizer_from_layout(WFLW98, gt, rule="inter_pupil").item() == pytest.approx(12.0)
    # a layout that declares inter_pupil by its normalizer_index: two halves, (0, 1) and (2, 3)
    toy = Layout("toy", flip_index=(0, 1, 2, 3), normalizer="inter_pupil", normalizer_index=(0, 1, 2, 3))
    pts = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [3.0, 4.0], [5.0, 4.0]]])  # centroids (1, 0), (4, 4)
    assert normalizer_from_layout(toy, pts).item() == pytest.approx(5.0)


def test_box_and_head_normalizers():
    gt = torch.tensor([[12.0, 25.0], [28.0, 65.0]]).repeat(10, 1)[None, :19]  # AFLW's 19 points
    boxes = torch.tensor([[10.0, 20.0, 30.0, 70.0]])  # w 20, h 50
    assert normalizer_from_layout(AFLW19, gt, boxes).item() == pytest.approx(math.sqrt(20 * 50))
    # the landmark box is (12, 25, 28, 65): w 16, h 40
    torch.testing.assert_close(landmark_box(gt), torch.tensor([[12.0, 25.0, 28.0, 65.0]], dtype=torch.float64))
    assert normalizer_from_layout(AFLW19, gt, landmark_box(gt)).item() == pytest.approx(math.sqrt(16 * 40))
    # MPII: 0.6 * |(30, 40)| = 30
    head = normalizer_from_layout(MPII16, torch.zeros(1, 16, 2), torch.tensor([[100.0, 50.0, 130.0, 90.0]]))
    assert head.item() == pytest.approx(30.0)


def test_normalizer_errors():
    gt = torch.zeros(3, 68, 2)
    gt[:, 45, 0] = torch.tensor([5.0, 0.0, 5.0])  # sample 1: both eye corners at the origin
    with pytest.raises(ValueError, match="inter_ocular normaliser of sample 1 is 0.0"):
        normalizer_from_layout(IBUG68, gt)
    with pytest.raises(ValueError, match="pass the head boxes"):
        normalizer_from_layout(MPII16, torch.zeros(1, 16, 2))
    with pytest.raises(ValueError, match="box of sample 0"):
        normalizer_from_layout(MPII16, torch.zeros(1, 16, 2), torch.tensor([[5.0, 5.0, 5.0, 9.0]]))
    with pytest.raises(ValueError, match="unknown normaliser 'bogus'"):
        normalizer_from_layout(Layout("x", (0,), "bogus"), torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="coco_keypoint_ap"):
        normalizer_from_layout(COCO17, torch.zeros(1, 17, 2))
    with pytest.raises(ValueError, match="no pupil_index"):
        normalizer_from_layout(AFLW19, torch.zeros(1, 19, 2), rule="inter_pupil")


# --- FR, CED, AUC ----------------------------------------------------------------------------

def test_failure_rate_is_strict():
    # 0.1 itself is not a failure; 0.15 and 0.2 are: 2 of 4
    assert failure_rate([0.05, 0.1, 0.15, 0.2]) == 0.5
    assert failure_rate([0.05, 0.1, 0.15, 0.2], threshold=0.08) == 0.75


def test_ced_curve_by_hand():
    thresholds, fractions = ced_curve(torch.tensor([0.0, 0.04, 0.2]), threshold=0.1, steps=4)
    # thresholds 0, .025, .05, .075, .1: NME 0 counts from the start, 0.04 from .05, 0.2 never
    torch.testing.assert_close(thresholds, torch.tensor([0, 0.025, 0.05, 0.075, 0.1], dtype=torch.float64))
    torch.testing.assert_close(fractions, torch.tensor([1, 1, 2, 2, 2], dtype=torch.float64) / 3)


def test_auc_extremes_and_uniform():
    assert auc(torch.zeros(5)) == 1.0
    assert auc([0.1000001, 0.3, 7.0]) == 0.0
    # 2000 NMEs uniform on [0, 0.2], each midway between grid points (i + 1/2) * 1e-4: the CED is
    # t / 0.2 on [0, 0.1], so AUC = (1 / 0.1) * (0.1^2 / 2) / 0.2 = 0.25 (exactly, on this grid)
    uniform = (torch.arange(2000, dtype=torch.float64) + 0.5) * 1e-4
    assert auc(uniform) == pytest.approx(0.25, abs=1e-12)
    # a single NME at 0.05005: 1 - 0.05005 / 0.1 = 0.4995
    assert auc([0.05005]) == pytest.approx(0.4995, abs=1e-12)


def test_auc_trapezoid_bound():
    # an NME exactly on the threshold (a grid point) contributes half a step: 1 / (2 * steps)
    assert auc([0.1], steps=1000) == pytest.approx(1 / 2000, abs=1e-12)
    nmes = torch.rand(500, dtype=torch.float64) * 0.15
    exact = (1 - nmes / 0.1).clamp(min=0).mean().item()
    assert abs(auc(nmes, steps=1000) - exact) <= 1 / 2000 + 1e-12


@pytest.mark.parametrize("bad", [[], [0.1, NAN], [-0.01]])
def test_nme_summaries_reject_bad_input(bad):
    with pytest.raises(ValueError):
        auc(bad)


def test_summarize_overall_and_subsets():
    nmes = torch.tensor([0.02005, 0.04005, 0.12005, 0.06005], dtype=torch.float64)
    subsets = {"a": torch.tensor([True, True, False, False]),
               "b": torch.tensor([False, False, True, True]),
               "empty": torch.zeros(4, dtype=torch.bool)}
    table = summarize(nmes, subsets)
    assert list(table) == ["all", "a", "b", "empty"]
    # all: NME (2.005 + 4.005 + 12.005 + 6.005) / 4 = 6.005 %, one failure in four: 25 %,
    # AUC = mean(1 - .2005, 1 - .4005, 0, 1 - .6005) = (0.7995 + 0.5995 + 0.3995) / 4 = 0.449625
    assert table["all"] == pytest.approx({"n": 4, "NME (%)": 6.005, "FR@0.1 (%)": 25.0, "AUC@0.1": 0.449625})
    # a: NME 3.005 %, no failure, AUC (0.7995 + 0.5995) / 2 = 0.6995
    assert table["a"] == pytest.approx({"n": 2, "NME (%)": 3.005, "FR@0.1 (%)": 0.0, "AUC@0.1": 0.6995})
    # b: NME 9.005 %, FR 50 %, AUC (0 + 0.3995) / 2 = 0.19975
    assert table["b"] == pytest.approx({"n": 2, "NME (%)": 9.005, "FR@0.1 (%)": 50.0, "AUC@0.1": 0.19975})
    assert table["empty"]["n"] == 0 and math.isnan(table["empty"]["NME (%)"])
    frame = pd.DataFrame.from_dict(table, orient="index")
    assert frame.shape == (4, 4) and frame.loc["b", "FR@0.1 (%)"] == 50.0
    with pytest.raises(ValueError, match="subset 'a' must be a bool mask"):
        summarize(nmes, {"a": torch.ones(3, dtype=torch.bool)})


# --- PCKh ------------------------------------------------------------------------------------

def test_pckh_by_hand():
    gt = torch.zeros(2, 3, 2)
    pred = torch.tensor([[[4.0, 0.0], [3.0, 4.0], [6.0, 0.0]],    # errors 4, 5, 6
                         [[9.0, 0.0], [0.0, 11.0], [50.0, 0.0]]])  # errors 9, 11, (50, invisible)
    visible = torch.tensor([[1, 1, 1], [1, 1, 0]])
    # head sizes 10 and 20: correct within 5 and 10 px -> [T, T(<=), F], [T, F, -]
    out = pckh(pred, gt, visible, torch.tensor([10.0, 20.0]))
    torch.testing.assert_close(out.per_joint, torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64))
    assert out.count.tolist() == [2, 2, 1]
    assert out.correct.tolist() == [[True, True, False], [True, False, False]]
    assert out.mean == pytest.approx(3 / 5)
    never = pckh(pred, gt, torch.tensor([[1, 1, 0], [1, 1, 0]]), torch.tensor([10.0, 20.0]))
    assert math.isnan(never.per_joint[2].item())


def test_mpii_table_by_hand():
    j = {name: i for i, name in enumerate(MPII16_NAMES)}
    gt = torch.rand(2, 16, 2) * 100
    error = torch.zeros(2, 16)
    error[0, j["r_wrist"]] = 7      # wrong at 0.5 (5 px)
    error[0, j["head_top"]] = 3     # right at 0.5, wrong at 0.1 (1 px)
    error[1, j["upper_neck"]] = 8   # wrong
    error[1, j["pelvis"]] = 9       # wrong, but pelvis is not in the MPII mean
    pred = gt + torch.stack([error, torch.zeros_like(error)], dim=-1)
    visible = torch.ones(2, 16)
    visible[1, j["l_ankle"]] = 0
    head_sizes = torch.tensor([10.0, 10.0])

    table = mpii_pckh_table(pred, gt, visible, head_sizes)
    # 14 joints x 2 samples - 1 invisible = 27 counted; 2 wrong at 0.5, 3 wrong at 0.1
    expected = {"Head": 100.0, "Shoulder": 100.0, "Elbow": 100.0, "Wrist": (50 + 100) / 2,
                "Hip": 100.0, "Knee": 100.0, "Ankle": 100.0, "Mean": 100 * 25 / 27, "Mean@0.1": 100 * 24 / 27}
    assert list(table) == list(expected)
    assert table == pytest.approx(expected)
    # the official toolkit's Head averages upper_neck (1/2) and head_top (2/2)
    assert mpii_pckh_table(pred, gt, visible, head_sizes, style="mpii")["Head"] == pytest.approx(75.0)
    # pckh's own mean excludes nothing: 31 visible, 3 wrong
    assert pckh(pred, gt, visible, head_sizes).mean == pytest.approx(28 / 31)
    with pytest.raises(ValueError, match="names lack the MPII joints"):
        mpii_pckh_table(pred, gt, visible, head_sizes, names=[f"j{i}" for i in range(16)])


# --- COCO keypoint AP ------------------------------------------------------------------------

SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10


def _coco_gt():
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for image_id in (1, 2):
        xy = rng.uniform(100, 200, size=(17, 2))
        v = np.full(17, 2)
        v[[3, 4]] = 0  # ears unlabelled
        xy[v == 0] = 0
        annotations.append({
            "id": image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "keypoints": np.column_stack([xy, v]).ravel().tolist(), "num_keypoints": int((v > 0).sum()),
            "area": 100.0 * 100.0, "bbox": [100.0, 100.0, 100.0, 100.0],
        })
        images.append({"id": image_id, "width": 320, "height": 240})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": [], "skeleton": []}]}


def _predictions(gt: dict, shift: float) -> list[dict]:
    out = []
    for ann in gt["annotations"]:
        kp = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
        kp[:, 0] += shift
        kp[kp[:, 2] == 0, :2] = 1000.0  # far away where unlabelled: must not matter
        kp[:, 2] = 1.0
        out.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.9})
    return out


def test_coco_perfect_predictions_give_ap_one(capsys):
    gt = _coco_gt()
    predictions = _predictions(gt, shift=0.0)
    stats, log = coco_keypoint_ap(predictions, gt, return_log=True)
    assert capsys.readouterr().out == ""  # pycocotools' printout is captured, not printed
    assert tuple(stats) == COCO_KEYPOINT_STATS
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
    assert stats["APl"] == pytest.approx(1.0)
    assert math.isnan(stats["APm"])  # both people are large (area 100^2 > 96^2): -1 becomes NaN
    assert "Average Precision" in log
    assert "area" not in predictions[0]  # the caller's dicts are left alone


def test_coco_shifted_predictions_match_a_hand_computed_oks():
    gt = _coco_gt()
    shift = 6.0
    # OKS = mean over labelled keypoints of exp(-d^2 / (2 * area * (2 sigma)^2)), d = 6 px
    labelled = np.ones(17, bool)
    labelled[[3, 4]] = False
    oks = np.exp(-shift**2 / (2 * 100.0**2 * (2 * SIGMAS[labelled]) ** 2)).mean()
    thresholds = np.linspace(0.5, 0.95, 10)
    assert np.abs(oks - thresholds).min() > 1e-3, "pick a shift whose OKS is not on a threshold"
    # each person is matched at threshold t iff OKS >= t, and then with precision 1: AP = that fraction
    stats = coco_keypoint_ap(_predictions(gt, shift), _coco_object(gt))
    assert 0 < stats["AP"] < 1
    assert stats["AP"] == pytest.approx((oks >= thresholds).mean())
    assert stats["AP50"] == pytest.approx(float(oks >= 0.5))
    assert stats["AP75"] == pytest.approx(float(oks >= 0.75))


def _coco_object(d: dict) -> COCO:
    coco = COCO()
    coco.dataset = d
    coco.createIndex()
    return coco


def test_coco_errors():
    gt = _coco_gt()
    with pytest.raises(ValueError, match="no predictions"):
        coco_keypoint_ap([], gt)
    bad = _predictions(gt, 0.0)
    bad[1]["image_id"] = 99
    with pytest.raises(ValueError, match="prediction 1 is for image_id 99"):
        coco_keypoint_ap(bad, gt)
    short = _predictions(gt, 0.0)
    short[0]["keypoints"] = short[0]["keypoints"][:-3]
    with pytest.raises(ValueError, match="prediction 0 .* must have 51"):
        coco_keypoint_ap(short, gt)
    del gt["annotations"][0]["area"]
    with pytest.raises(ValueError, match=r"annotation 0 .* lacks \['area'\]"):
        coco_keypoint_ap(_predictions(_coco_gt(), 0.0), gt)


# --- OKS AP of one person per image, from arrays (keypoint_ap) ----------------------------------

def figures(n: int = 4, seed: int = 0) -> torch.Tensor:
    """n figures of the 16 MPII joints spread over 100 px."""
    return torch.rand(n, 16, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 100 + 10


def test_oks_sigmas_are_cocos_for_the_joints_coco_defines_and_nan_for_the_others():
    sigmas = dict(zip(MPII16_NAMES, oks_sigmas(MPII16_NAMES)))
    assert sigmas["l_shoulder"] == pytest.approx(0.079) and sigmas["r_hip"] == pytest.approx(0.107)
    assert sigmas["l_wrist"] == pytest.approx(0.062) and sigmas["r_ankle"] == pytest.approx(0.089)
    assert all(math.isnan(sigmas[j]) for j in ("pelvis", "thorax", "upper_neck", "head_top"))
    assert np.isfinite(oks_sigmas(COCO17.names)).all()


def test_keypoint_ap_of_two_exact_and_two_lost_figures_is_the_hand_computed_one():
    """Two exact figures and two far off: recall stops at 0.5. Ranked first, the exact ones give
    precision 1 up to it (AP = 51/101 of COCO's 101 recall points); ranked last, precision 0.5."""
    gt = figures()
    pred = gt.clone()
    pred[2:] += 500.0
    visible, sigmas = torch.ones(4, 16), oks_sigmas(MPII16_NAMES)
    exact_first = torch.tensor([0.9, 0.8, 0.2, 0.1])[:, None].expand(4, 16)
    assert keypoint_ap(pred, gt, visible, exact_first, sigmas)["AP"] == pytest.approx(51 / 101)
    lost_first = exact_first.flip(0)
    assert keypoint_ap(pred, gt, visible, lost_first, sigmas)["AP"] == pytest.approx(0.5 * 51 / 101)


def test_keypoint_ap_leaves_out_joints_without_a_sigma_and_joints_not_visible():
    gt = figures()
    pred = gt.clone()
    pred[:, MPII16_NAMES.index("pelvis")] += 300.0  # no COCO sigma: not counted
    visible = torch.ones(4, 16)
    pred[:, 0] += 300.0  # r_ankle, hidden below: not counted
    visible[:, 0] = 0
    scores = torch.ones(4, 16)
    assert keypoint_ap(pred, gt, visible, scores, oks_sigmas(MPII16_NAMES))["AP"] == pytest.approx(1.0)
    visible[:, 0] = 1
    assert keypoint_ap(pred, gt, visible, scores, oks_sigmas(MPII16_NAMES))["AP"] < 1.0


def test_keypoint_ap_area_is_the_share_of_the_joints_box():
    """A shift of d px has OKS exp(-d² / (2 s² (2 sigma)²)) per joint, s² the area: the box of
    the joints times 0.53 (mmpose's rule). One joint with a sigma, the others hidden."""
    gt = torch.tensor([[[0.0, 0.0]] * 16], dtype=torch.float64)
    gt[0, 12] = torch.tensor([0.0, 0.0])  # r_shoulder, sigma 0.079
    gt[0, 13] = torch.tensor([40.0, 50.0])  # l_shoulder, makes the box 40 x 50
    visible = torch.zeros(1, 16)
    visible[0, [12, 13]] = 1
    pred = gt.clone()
    pred[0, 12] += torch.tensor([3.0, 4.0])  # 5 px off; l_shoulder exact
    area = BOX_AREA_SHARE * 40 * 50
    oks = (math.exp(-25 / (2 * area * (2 * 0.079) ** 2)) + 1.0) / 2
    stats = keypoint_ap(pred, gt, visible, torch.ones(1, 16), oks_sigmas(MPII16_NAMES))
    thresholds = np.linspace(0.5, 0.95, 10)
    assert stats["AP"] == pytest.approx(np.mean(thresholds <= oks + 1e-12))  # AP over the thresholds passed


def test_keypoint_ap_errors_name_the_problem():
    gt = figures(2)
    ones = torch.ones(2, 16)
    with pytest.raises(ValueError, match="one value per keypoint"):
        keypoint_ap(gt, gt, ones, ones, oks_sigmas(MPII16_NAMES)[:12])
    with pytest.raises(ValueError, match="scores must be finite"):
        keypoint_ap(gt, gt, ones, torch.ones(2, 15), oks_sigmas(MPII16_NAMES))
    hidden = ones.clone()
    hidden[1] = 0
    with pytest.raises(ValueError, match="every person needs a visible joint"):
        keypoint_ap(gt, gt, hidden, ones, oks_sigmas(MPII16_NAMES))
