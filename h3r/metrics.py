"""The field's metrics, each exactly as its protocol defines it.

All inputs are in *original-image* pixels (``keypoints_orig`` of a sample, predictions mapped
back by the inverse crop affine). ``N`` samples, ``K`` keypoints; array-likes are accepted and
everything is computed in float64 on the inputs' device.

Face alignment (300W, WFLW, COFW, AFLW)
    ``nme``            per-sample mean point-to-point error over the visible keypoints divided by
                       the protocol's normaliser (:func:`normalizer_from_layout`)
    ``failure_rate``   fraction of samples with NME > threshold (FR@0.1)
    ``ced_curve``      cumulative error distribution, fraction of samples with NME <= t
    ``auc``            area under the CED on [0, threshold], divided by threshold
    ``summarize``      NME (%), FR (%) and AUC overall and per test subset
Human pose
    ``pckh``               MPII PCKh per joint; ``mpii_pckh_table`` the Head ... Ankle, Mean table
    ``coco_keypoint_ap``   COCO keypoint AP/AR through pycocotools' ``COCOeval``
    ``keypoint_ap``        the same from predictions and ground truth in arrays (one person per
                           image), for benchmarks without a COCO annotation file; ``oks_sigmas``
                           the per-joint OKS sigmas COCO defines, by joint name
"""
from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from h3r.data.layouts import COCO17_NAMES, MPII16_NAMES, Layout, normalizer_distances

#: the order of ``COCOeval.stats`` for ``iouType="keypoints"``
COCO_KEYPOINT_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _float64(x) -> Tensor:
    """Tensors and arrays upcast, Python numbers read as float64 (not torch's default float32)."""
    return x.double() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))


def _points(x, what: str, shape: tuple[int, ...] | None = None) -> Tensor:
    """``x`` as a float64 (N, K, 2) tensor, with the shape checked."""
    x = _float64(x)
    if x.ndim != 3 or x.shape[-1] != 2 or (shape is not None and tuple(x.shape) != shape):
        want = "(N, K, 2)" if shape is None else str(shape)
        raise ValueError(f"{what} must have shape {want}, got {tuple(x.shape)}")
    return x


def _visibility(visible, shape: tuple[int, int], device) -> Tensor:
    if visible is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    visible = torch.as_tensor(visible, device=device)
    if tuple(visible.shape) != shape:
        raise ValueError(f"visible must have shape {shape}, got {tuple(visible.shape)}")
    return visible > 0


def _check_finite(points: Tensor, visible: Tensor, what: str) -> None:
    """Raise for a visible keypoint whose coordinate is NaN or infinite, naming it."""
    bad = visible & ~torch.isfinite(points).all(-1)
    if bad.any():
        n, k = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{what}: keypoint {k} of sample {n} is visible but its coordinate is "
                         f"{points[n, k].tolist()}; a metric cannot score a non-finite point")


def _check_normalizer(normalizer: Tensor, n: int, what: str) -> Tensor:
    """Check a per-sample normaliser (N,): finite and positive, else name the first bad sample."""
    normalizer = _float64(normalizer)
    if tuple(normalizer.shape) != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {tuple(normalizer.shape)}")
    bad = ~(torch.isfinite(normalizer) & (normalizer > 0))
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"{what} of sample {i} is {normalizer[i].item()}, but must be positive and "
                         f"finite ({int(bad.sum())} of {n} samples are bad); check that sample's "
                         f"annotation (coinciding eye points, an empty box)")
    return normalizer


# --- normalisers ------------------------------------------------------------------------------

def landmark_box(gt) -> Tensor:
    """The tight box ``(x1, y1, x2, y2)`` (N, 4) of the ground-truth points (N, K, 2).

    AFLW2000-3D's protocol (3DDFA, and the official H3R ``test_aflw2000.py``) normalises by
    ``sqrt(w * h)`` of this box: ``normalizer_from_layout(layout, gt, landmark_box(gt))``.
    """
    gt = _points(gt, "gt")
    return torch.cat([gt.amin(dim=1), gt.amax(dim=1)], dim=-1)


def normalizer_from_layout(layout: Layout, gt, boxes=None, rule: str | None = None) -> Tensor:
    """The protocol's normalising distance (N,) in pixels, from ground truth (N, K, 2): the
    distance :func:`h3r.data.layouts.normalizer_distances` measures for ``rule`` (default
    ``layout.normalizer``), checked.

    Raises ValueError for an unknown rule, missing indices or boxes, or a normaliser that is zero,
    negative or not finite (naming the sample).
    """
    rule = rule or layout.normalizer
    normalizer = normalizer_distances(layout, gt, boxes, rule)
    if rule in ("box", "head"):
        boxes = _float64(boxes)
        bad = ~((boxes[:, 2:] - boxes[:, :2]) > 0).all(-1)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise ValueError(f"layout {layout.name!r} with the {rule!r} normaliser: box of sample {i} is "
                             f"{boxes[i].tolist()}, which is empty or not (x1, y1, x2, y2) with x1 < x2 and y1 < y2")
    return _check_normalizer(normalizer, normalizer.shape[0], f"the {rule} normaliser")


# --- face alignment ---------------------------------------------------------------------------

def nme(pred, gt, normalizer, visible=None) -> Tensor:
    """Normalised mean error per sample (N,), a fraction (x100 for the usual %).

    ``nme[n] = mean_{k visible} |pred[n, k] - gt[n, k]| / normalizer[n]``.

    pred, gt: (N, K, 2) original-image pixels; normalizer: (N,) pixels; visible: (N, K) or None
    (all visible). Invisible keypoints are ignored, whatever their coordinates (NaN included).
    """
    gt = _points(gt, "gt")
    pred = _points(pred, "pred", tuple(gt.shape)).to(gt.device)
    visible = _visibility(visible, tuple(gt.shape[:2]), gt.device)
    normalizer = _check_normalizer(normalizer, gt.shape[0], "normalizer").to(gt.device)
    _check_finite(gt, visible, "gt")
    _check_finite(pred, visible, "pred")
    count = visible.sum(dim=1)
    if (count == 0).any():
        raise ValueError(f"sample {int((count == 0).nonzero()[0])} has no visible keypoint, so its NME "
                         f"is undefined; drop it from the evaluation")
    error = torch.linalg.vector_norm(pred - gt, dim=-1)
    error = torch.where(visible, error, torch.zeros_like(error))
    return error.sum(dim=1) / count / normalizer


def _nmes(nmes) -> Tensor:
    nmes = _float64(nmes)
    if nmes.ndim != 1 or nmes.numel() == 0:
        raise ValueError(f"nmes must be a non-empty 1-D array of per-sample NMEs, got shape {tuple(nmes.shape)}")
    bad = ~(torch.isfinite(nmes) & (nmes >= 0))
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"NME of sample {i} is {nmes[i].item()}; NMEs must be finite and >= 0")
    return nmes


def failure_rate(nmes, threshold: float = 0.1) -> float:
    """Fraction of samples whose NME exceeds ``threshold`` (strictly: NME == threshold passes)."""
    return (_nmes(nmes) > threshold).double().mean().item()


def ced_curve(nmes, threshold: float = 0.1, steps: int = 1000) -> tuple[Tensor, Tensor]:
    """The cumulative error distribution on ``steps + 1`` equally spaced thresholds in [0, threshold].

    Returns ``thresholds`` (steps + 1,) and ``fractions`` (steps + 1,), the fraction of samples
    with NME <= each threshold.
    """
    if not (threshold > 0 and steps >= 1):
        raise ValueError(f"need threshold > 0 and steps >= 1, got threshold={threshold}, steps={steps}")
    nmes = _nmes(nmes)
    thresholds = torch.linspace(0, threshold, steps + 1, dtype=torch.float64, device=nmes.device)
    below = torch.searchsorted(nmes.sort().values, thresholds, right=True)
    return thresholds, below.double() / nmes.numel()


def auc(nmes, threshold: float = 0.1, steps: int = 1000) -> float:
    """Area under the CED on [0, threshold] divided by ``threshold``: 1 when every NME is 0, 0 when
    every NME exceeds ``threshold``.

    As the WFLW / 300W evaluation scripts do, the CED is sampled on a grid (default step
    ``threshold / 1000``, 1e-4 at 0.1) and integrated by the trapezoid rule. The exact area of the
    step function is ``mean(max(0, 1 - nme / threshold))``; the trapezoid rule differs from it by
    at most ``1 / (2 * steps)`` (a sample whose NME falls exactly on a grid point or between two
    contributes half a grid step), and is exact when every NME lies midway between grid points.
    """
    thresholds, fractions = ced_curve(nmes, threshold, steps)
    return (torch.trapezoid(fractions, thresholds) / threshold).item()


def summarize(nmes, subsets: dict | None = None, threshold: float = 0.1) -> dict[str, dict[str, float]]:
    """NME, failure rate and AUC, overall (row ``"all"``) and for each named subset.

    nmes: (N,) per-sample NMEs (fractions); subsets: name -> (N,) bool mask, e.g. WFLW's
    ``{"pose": ..., "blur": ...}``. Returns ``{row: {"n", "NME (%)", "FR@0.1 (%)", "AUC@0.1"}}``,
    ready for ``pandas.DataFrame.from_dict(result, orient="index")``. A subset with no sample gets
    n = 0 and NaN metrics.
    """
    nmes = _nmes(nmes)
    masks = {"all": torch.ones_like(nmes, dtype=torch.bool)}
    for name, mask in (subsets or {}).items():
        if name in masks:
            raise ValueError(f"subset name {name!r} is reserved for the whole set; rename it")
        mask = torch.as_tensor(mask, device=nmes.device)
        if tuple(mask.shape) != tuple(nmes.shape) or mask.dtype != torch.bool:
            raise ValueError(f"subset {name!r} must be a bool mask of shape {tuple(nmes.shape)}, "
                             f"got {mask.dtype} {tuple(mask.shape)}")
        masks[name] = mask
    t = f"{threshold:g}"
    table = {}
    for name, mask in masks.items():
        part = nmes[mask]
        empty = part.numel() == 0
        table[name] = {
            "n": part.numel(),
            "NME (%)": math.nan if empty else 100 * part.mean().item(),
            f"FR@{t} (%)": math.nan if empty else 100 * failure_rate(part, threshold),
            f"AUC@{t}": math.nan if empty else auc(part, threshold),
        }
    return table


# --- human pose: MPII PCKh --------------------------------------------------------------------

@dataclass
class PCKh:
    """PCKh at one threshold.

    per_joint: (K,) fraction of visible joints within ``threshold * head_size`` (NaN for a joint
               never visible); count: (K,) how many visible ones each fraction is over;
    correct:   (N, K) bool, the visible joints within the threshold;
    mean:      fraction over all visible joints pooled, excluding none (see
               :func:`mpii_pckh_table` for the MPII "Mean", which leaves out pelvis and thorax).
    """

    per_joint: Tensor
    count: Tensor
    correct: Tensor
    mean: float


def pckh(pred, gt, visible, head_sizes, threshold: float = 0.5) -> PCKh:
    """MPII's PCKh: a visible joint is correct when ``|pred - gt| <= threshold * head_size``.

    pred, gt: (N, K, 2) original-image pixels; visible: (N, K) (MPII's ``1 - jnt_missing``);
    head_sizes: (N,) pixels, already ``0.6 * head box diagonal`` (:func:`normalizer_from_layout`
    with the ``"head"`` rule). Only visible joints count.
    """
    gt = _points(gt, "gt")
    pred = _points(pred, "pred", tuple(gt.shape)).to(gt.device)
    visible = _visibility(visible, tuple(gt.shape[:2]), gt.device)
    head_sizes = _check_normalizer(head_sizes, gt.shape[0], "head_sizes").to(gt.device)
    _check_finite(gt, visible, "gt")
    _check_finite(pred, visible, "pred")
    distance = torch.linalg.vector_norm(pred - gt, dim=-1) / head_sizes[:, None]
    correct = visible & (distance <= threshold)
    count = visible.sum(dim=0)
    per_joint = correct.sum(dim=0).double() / count  # 0 / 0 = NaN for a joint never visible
    total = int(count.sum())
    mean = correct.sum().item() / total if total else math.nan
    return PCKh(per_joint, count, correct, mean)


#: rows of the MPII table (HRNet / mmpose order) and the joints each averages
MPII_GROUPS = {
    "Head": ("head_top",),
    "Shoulder": ("l_shoulder", "r_shoulder"),
    "Elbow": ("l_elbow", "r_elbow"),
    "Wrist": ("l_wrist", "r_wrist"),
    "Hip": ("l_hip", "r_hip"),
    "Knee": ("l_knee", "r_knee"),
    "Ankle": ("l_ankle", "r_ankle"),
}
MPII_EXCLUDED = ("pelvis", "thorax")


def mpii_pckh_table(pred, gt, visible, head_sizes, names=MPII16_NAMES, style: str = "hrnet") -> dict[str, float]:
    """The MPII results row, in %: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean@0.1.

    Each group is the plain average of its joints' PCKh@0.5 (left and right). ``Mean`` pools every
    visible joint except pelvis and thorax (the MPII toolkit's "Total", HRNet's count-weighted
    "Mean"); ``Mean@0.1`` is the same at threshold 0.1 exactly (HRNet's table reads row 11 of its
    0.01-step grid, i.e. PCKh@0.11).

    style: ``"hrnet"`` (HRNet, mmpose: Head is head_top alone) or ``"mpii"`` (the official MATLAB
    toolkit's ``genTablePCK``: Head averages upper_neck and head_top).
    """
    groups = dict(MPII_GROUPS)
    if style == "mpii":
        groups["Head"] = ("upper_neck", "head_top")
    elif style != "hrnet":
        raise ValueError(f"style must be 'hrnet' or 'mpii', got {style!r}")
    names = tuple(names)
    missing = ({j for g in groups.values() for j in g} | set(MPII_EXCLUDED)) - set(names)
    if missing:
        raise ValueError(f"names lack the MPII joints {sorted(missing)}; pass the joint names in "
                         f"the order of the keypoints (MPII16_NAMES)")
    at_half = pckh(pred, gt, visible, head_sizes, 0.5)
    at_tenth = pckh(pred, gt, visible, head_sizes, 0.1)
    keep = torch.tensor([n not in MPII_EXCLUDED for n in names], device=at_half.correct.device)
    counted = at_half.count[keep].sum().item()
    table = {row: 100 * at_half.per_joint[[names.index(j) for j in joints]].mean().item()
             for row, joints in groups.items()}
    table["Mean"] = 100 * at_half.correct[:, keep].sum().item() / counted
    table["Mean@0.1"] = 100 * at_tenth.correct[:, keep].sum().item() / counted
    return table


# --- human pose: COCO keypoint AP -------------------------------------------------------------

_GT_FIELDS = ("id", "image_id", "category_id", "keypoints", "num_keypoints", "area", "bbox", "iscrowd")
_PRED_FIELDS = ("image_id", "category_id", "keypoints", "score")


def _as_coco(coco_gt):
    """A pycocotools ``COCO`` from a ``COCO`` or an in-memory COCO-format dict (no temp file)."""
    from pycocotools.coco import COCO

    if isinstance(coco_gt, COCO):
        return coco_gt
    if not isinstance(coco_gt, dict):
        raise TypeError(f"coco_gt must be a pycocotools COCO or a COCO-format dict, got {type(coco_gt).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in coco_gt:
            raise ValueError(f"coco_gt lacks the top-level key {key!r} (COCO format needs images, "
                             f"annotations, categories)")
    for i, ann in enumerate(coco_gt["annotations"]):
        missing = [f for f in _GT_FIELDS if f not in ann]
        if missing:
            raise ValueError(f"coco_gt annotation {i} (id {ann.get('id')}) lacks {missing}; keypoint "
                             f"evaluation needs {_GT_FIELDS}")
    coco = COCO()
    coco.dataset = coco_gt
    coco.createIndex()
    return coco


def _prediction(i: int, p: dict, num_keypoints: int, image_ids: set) -> dict:
    missing = [f for f in _PRED_FIELDS if f not in p]
    if missing:
        raise ValueError(f"prediction {i} lacks {missing}; each needs {_PRED_FIELDS}")
    keypoints = np.asarray(p["keypoints"], dtype=np.float64).ravel()
    if keypoints.size != 3 * num_keypoints or not np.isfinite(keypoints).all():
        raise ValueError(f"prediction {i} (image {p['image_id']}) must have {3 * num_keypoints} finite "
                         f"values [x, y, score] * {num_keypoints}, got {keypoints.size} values")
    if p["image_id"] not in image_ids:
        raise ValueError(f"prediction {i} is for image_id {p['image_id']!r}, which is not in the ground truth")
    return {**p, "keypoints": keypoints.tolist(), "score": float(p["score"])}


def coco_keypoint_ap(predictions: list[dict], coco_gt, sigmas=None, return_log: bool = False):
    """COCO keypoint AP and AR, computed by pycocotools' ``COCOeval(iouType="keypoints")``.

    predictions: ``[{"image_id", "category_id", "keypoints": [x, y, score] * K, "score"}, ...]``
    in original-image pixels (the caller's dicts are not modified).
    coco_gt: a pycocotools ``COCO``, or a COCO-format dict loaded in memory.
    sigmas: per-keypoint OKS sigmas (K,); default COCO's 17. Needed for any other K.

    Returns a dict with the 10 standard stats ``COCO_KEYPOINT_STATS`` (fractions; NaN where
    pycocotools reports -1 because no ground truth falls in that area range), and also the
    captured pycocotools printout when ``return_log`` (then ``(stats, log)``).
    """
    from pycocotools.cocoeval import COCOeval, Params

    if not predictions:
        raise ValueError("no predictions: COCO AP is undefined for an empty result list (every "
                         "ground-truth person would be missed); check the inference loop")
    sigmas = np.asarray(Params(iouType="keypoints").kpt_oks_sigmas if sigmas is None else sigmas, dtype=np.float64)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        coco = _as_coco(coco_gt)
        for ann in coco.dataset["annotations"]:
            if len(ann["keypoints"]) != 3 * len(sigmas):
                raise ValueError(f"ground-truth annotation {ann['id']} has {len(ann['keypoints']) // 3} "
                                 f"keypoints but there are {len(sigmas)} OKS sigmas; pass sigmas=")
        image_ids = set(coco.getImgIds())
        results = [_prediction(i, p, len(sigmas), image_ids) for i, p in enumerate(predictions)]
        evaluator = COCOeval(coco, coco.loadRes(results), iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = sigmas
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {name: (math.nan if v == -1 else float(v)) for name, v in zip(COCO_KEYPOINT_STATS, evaluator.stats)}
    return (stats, log.getvalue()) if return_log else stats


#: mmpose's rule for the OKS area of an annotation without a segmentation (its
#: ``BaseCocoStyleDataset``): this share of the person box's area
BOX_AREA_SHARE = 0.53


def oks_sigmas(names) -> np.ndarray:
    """The OKS sigma of each joint in ``names`` that COCO defines (pycocotools'
    ``Params.kpt_oks_sigmas``, read from pycocotools rather than typed), NaN for the others: of
    MPII's 16, the 12 limb joints have COCO's sigma; pelvis, thorax, upper neck and head top have
    none, and :func:`keypoint_ap` leaves them out."""
    from pycocotools.cocoeval import Params

    coco = dict(zip(COCO17_NAMES, Params(iouType="keypoints").kpt_oks_sigmas))  # in COCO's order

    def spelled_as_coco(name: str) -> str:  # MPII16_NAMES write "l_wrist" for COCO's "left_wrist"
        side, _, joint = name.partition("_")
        return {"l": f"left_{joint}", "r": f"right_{joint}"}.get(side, name)

    return np.array([coco.get(spelled_as_coco(name), np.nan) for name in names], dtype=np.float64)


def keypoint_ap(pred, gt, visible, scores, sigmas, area_share: float = BOX_AREA_SHARE) -> dict[str, float]:
    """COCO keypoint AP and AR (:func:`coco_keypoint_ap`, pycocotools) of one person per image,
    from arrays: for a benchmark whose ground truth is not a COCO annotation file.

    pred, gt: (N, K, 2) original-image pixels; visible: (N, K); scores: (N, K) the decoder's
    confidence per joint (a person's score is their mean, as :func:`h3r.evaluation.coco_results`);
    sigmas: (K,) OKS sigmas, NaN for a joint OKS leaves out (:func:`oks_sigmas`). A person's OKS
    area is ``area_share`` x the area of the box around their visible ground-truth joints (mmpose's
    rule for annotations without a segmentation, :data:`BOX_AREA_SHARE`). Joints that are not
    visible or have no sigma are not counted (COCO's ``v = 0``). Returns the 10 stats of
    :data:`COCO_KEYPOINT_STATS` as fractions."""
    gt = _points(gt, "gt")
    pred = _points(pred, "pred", tuple(gt.shape)).to(gt.device)
    n, k = gt.shape[:2]
    visible = _visibility(visible, (n, k), gt.device)
    _check_finite(gt, visible, "gt")
    _check_finite(pred, torch.ones_like(visible), "pred")
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if sigmas.shape != (k,):
        raise ValueError(f"sigmas must hold one value per keypoint ({k}), got shape {sigmas.shape}")
    scores = _float64(scores).to(gt.device)
    if scores.shape != (n, k) or not torch.isfinite(scores).all():
        raise ValueError(f"scores must be finite, of shape {(n, k)}, got {tuple(scores.shape)}")
    counted = visible & torch.from_numpy(np.isfinite(sigmas)).to(gt.device)
    if not counted.any(dim=1).all():
        raise ValueError("every person needs a visible joint with an OKS sigma; "
                         f"{int((~counted.any(dim=1)).sum())} of {n} have none")
    inf = torch.tensor(float("inf"), dtype=gt.dtype, device=gt.device)
    low = torch.where(counted[..., None], gt, inf).amin(dim=1)
    high = torch.where(counted[..., None], gt, -inf).amax(dim=1)
    box = torch.cat([low, high - low], dim=1)
    area = (area_share * box[:, 2] * box[:, 3]).clamp(min=1.0)
    flags = 2 * counted.double()
    truth = torch.cat([gt, flags[..., None]], dim=-1).flatten(1)
    coco_gt = {"images": [{"id": i} for i in range(n)], "categories": [{"id": 1, "name": "person"}],
               "annotations": [{"id": i + 1, "image_id": i, "category_id": 1, "keypoints": truth[i].tolist(),
                                "num_keypoints": int(counted[i].sum()), "area": float(area[i]),
                                "bbox": box[i].tolist(), "iscrowd": 0} for i in range(n)]}
    detected = torch.cat([pred, scores[..., None]], dim=-1).flatten(1)
    predictions = [{"image_id": i, "category_id": 1, "keypoints": detected[i].tolist(),
                    "score": float(scores[i].mean())} for i in range(n)]
    # a joint without a sigma has v = 0, which the OKS leaves out; any finite sigma stands in for it
    return coco_keypoint_ap(predictions, coco_gt, sigmas=np.nan_to_num(sigmas, nan=1.0))
