"""Training losses: a model's output and a codec's :class:`~h3r.codecs.Target` -> a scalar.

Every loss computes a per-keypoint loss ``l[n, k]`` in float32 (bf16 outputs are upcast) and
returns the weighted mean over keypoints, ``sum(w * l) / sum(w)`` with ``w = target.weights``:
keypoints of weight 0 contribute nothing (their target rows are never read, so they may hold
NaN), and an all-zero batch gives 0, not NaN.

``mse``         mean squared error per heatmap, for Gaussian targets (HRNet's ``JointsMSELoss``
                up to a constant: it also halves, and divides by all K keypoints, masked ones included).
``spatial_ce``  cross-entropy between a softmax over the Hh*Wh cells of a keypoint's map and the
                target normalised to sum 1: ``-log p(cell)`` for a one-hot (randomized-rounding)
                target, the soft cross-entropy for an expected or Gaussian target.
``binary_ce``   the official two-class head's loss: a background/foreground softmax per cell,
                cross-entropy against the target read as p(foreground) (1 at the one-hot cell),
                with class re-weighting, a prior and a focal factor as options.
``foreground_ce``  the same head trained for the official decoder: spatial CE on its foreground
                logits.
``l1_coords``   integral regression: L1 distance (|du| + |dv|, heatmap units) between the
                soft-argmax of the map (:class:`h3r.codecs.integral.SoftArgmax`) and the keypoint.
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from h3r.codecs.base import Target
from h3r.codecs.integral import SoftArgmax


def weighted_mean(per_keypoint: Tensor, weights: Tensor) -> Tensor:
    """``sum(w * l) / sum(w)`` over (N, K); 0 when every weight is 0."""
    weights = weights.to(per_keypoint.dtype)
    per_keypoint = torch.where(weights > 0, per_keypoint, torch.zeros_like(per_keypoint))
    return (weights * per_keypoint).sum() / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)


def mse(output: Tensor, target: Target) -> Tensor:
    """Heatmaps (N, K, Hh, Wh) against ``target.heatmaps``: mean over cells of the squared error."""
    pred, heatmaps = _heatmaps_and_target(output, target, "mse")
    return weighted_mean((pred - heatmaps).square().mean(dim=(-2, -1)), target.weights)


def spatial_ce(output: Tensor, target: Target) -> Tensor:
    """Logits (N, K, Hh, Wh): ``-sum_i q_i log softmax(logits)_i`` with ``q = heatmap / sum(heatmap)``.

    A uniform map scores ``log(Hh * Wh)``; a one-hot target, ``-log p`` of its cell.
    """
    logits, heatmaps = _heatmaps_and_target(output, target, "spatial_ce")
    log_p = logits.flatten(2).log_softmax(dim=-1)
    q = heatmaps.flatten(2)
    q = q / q.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
    return weighted_mean(-(q * log_p).sum(dim=-1), target.weights)


def binary_ce(output: Tensor, target: Target, pos_weight: float = 1.0, prior: float | str = "auto",
              gamma: float = 0.0) -> Tensor:
    """Binary head output (N, 2, K, Hh, Wh) (background, foreground logits) against p(foreground).

    Per cell ``-(pos_weight * y log p_fg + (1 - y) log p_bg)`` with ``y = target.heatmaps`` (one-hot
    draws, or soft targets such as the expected one), averaged over the cells of each keypoint's
    map. One foreground cell faces ``Hh * Wh - 1`` background cells (4095 at 64x64), so the mean is
    dominated by the easy background and its gradient on the foreground cell is ``1 / (Hh Wh)`` of a
    balanced one. Three remedies:

    ``pos_weight``  re-weights the foreground term (``Hh * Wh`` balances the classes);
    ``prior``       adds a constant to the foreground-minus-background logit, a frozen bias that
                    starts the head at ``p_fg = sigmoid(prior)`` instead of 1/2; ``"auto"`` (the
                    default) is ``-log(Hh Wh)``, about the share of the foreground, as RetinaNet's
                    prior; 0 is the plain cross-entropy;
    ``gamma``       the focal loss's ``(1 - p_t)^gamma`` factor, which discounts the cells already
                    classified well (Lin et al., ICCV 2017).

    With ``prior=0`` and the other defaults it is the plain per-cell cross-entropy, which trains the
    official head slowly (chapter 6 measures it); the prior is the one change that trains it as fast
    as a spatial softmax. None of them changes the head or what the official decoder reads.
    """
    if output.ndim != 5 or output.shape[1] != 2:
        raise ValueError(f"binary_ce needs a binary head's output (N, 2, K, H, W), got "
                         f"{tuple(output.shape)}; build the model with head='binary'")
    heatmaps = _target_heatmaps(target, output.shape[:1] + output.shape[2:], "binary_ce")
    if not pos_weight > 0:
        raise ValueError(f"pos_weight must be positive, got {pos_weight}")
    if not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if prior == "auto":
        prior = -math.log(output.shape[-1] * output.shape[-2])
    odds = output[:, 1].float() - output[:, 0].float() + prior  # log p_fg / p_bg
    log_fg, log_bg = F.logsigmoid(odds), F.logsigmoid(-odds)
    fg_term, bg_term = heatmaps * log_fg, (1 - heatmaps) * log_bg
    if gamma:
        fg_term = fg_term * (1 - log_fg.exp()) ** gamma
        bg_term = bg_term * (1 - log_bg.exp()) ** gamma
    per_cell = -(pos_weight * fg_term + bg_term)
    return weighted_mean(per_cell.mean(dim=(-2, -1)), target.weights)


def foreground_ce(output: Tensor, target: Target) -> Tensor:
    """The official binary head trained for its decoder: spatial-softmax cross-entropy
    (:func:`spatial_ce`) on the foreground logits (N, 2, K, Hh, Wh)[:, 1], the background channel
    unused. The official decoder softmaxes the top foreground logits, so it reads them as
    log-probabilities over cells up to a constant: exactly what this loss trains them to be."""
    if output.ndim != 5 or output.shape[1] != 2:
        raise ValueError(f"foreground_ce needs a binary head's output (N, 2, K, H, W), got "
                         f"{tuple(output.shape)}; build the model with head='binary'")
    return spatial_ce(output[:, 1], target)


def l1_coords(output: Tensor, target: Target, beta: float = 1.0,
              coords_fn: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Integral regression: ``|u - u*| + |v - v*|`` in heatmap units.

    ``coords_fn`` maps heatmaps (N, K, Hh, Wh) to keypoints (N, K, 2) in heatmap units; by default
    the soft-argmax of :class:`~h3r.codecs.integral.SoftArgmax` with inverse temperature ``beta``.
    """
    _check_heatmap_output(output, "l1_coords")
    output = output.float()
    if coords_fn is None:
        size = (output.shape[-1], output.shape[-2])
        coords_fn = lambda h: SoftArgmax(size, size, beta=beta).decode_heatmap_units(h)[0]  # noqa: E731
    keypoints = _masked(target.keypoints.float(), target.weights)
    if keypoints.shape != output.shape[:2] + (2,):
        raise ValueError(f"target keypoints have shape {tuple(keypoints.shape)} but the output "
                         f"{tuple(output.shape)} needs {tuple(output.shape[:2]) + (2,)}")
    return weighted_mean((coords_fn(output) - keypoints).abs().sum(dim=-1), target.weights)


LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse": mse, "spatial_ce": spatial_ce, "binary_ce": binary_ce, "foreground_ce": foreground_ce,
    "l1_coords": l1_coords,
}


def build_loss(name: str, **options) -> Callable[[Tensor, Target], Tensor]:
    """``loss(output, target)`` by name, with its keyword ``options`` bound (e.g. ``pos_weight``)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    fn = LOSSES[name]
    allowed = list(inspect.signature(fn).parameters)[2:]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"loss {name!r} has no option {unknown[0]!r}; its options are {allowed or 'none'}")
    return functools.partial(fn, **options)


# --- checks ---------------------------------------------------------------------------------

def _check_heatmap_output(output: Tensor, loss: str) -> None:
    if output.ndim == 5:
        raise ValueError(f"{loss} takes heatmaps (N, K, H, W) but got a binary head's output "
                         f"{tuple(output.shape)}; use binary_ce, or h3r.models.binary_scores first")
    if output.ndim != 4:
        raise ValueError(f"{loss} takes heatmaps (N, K, H, W), got shape {tuple(output.shape)}")


def _masked(values: Tensor, weights: Tensor) -> Tensor:
    """Zero the rows (N, K, ...) of weight 0, which may hold anything (NaN included)."""
    keep = (weights > 0).reshape(weights.shape + (1,) * (values.ndim - weights.ndim))
    return torch.where(keep, values, torch.zeros_like(values))


def _target_heatmaps(target: Target, shape: torch.Size, loss: str) -> Tensor:
    if target.heatmaps is None:
        raise ValueError(f"{loss} needs target heatmaps but the codec gave none (a coordinate-only "
                         "codec such as soft-argmax); use l1_coords")
    if target.heatmaps.shape != shape:
        raise ValueError(f"target heatmaps have shape {tuple(target.heatmaps.shape)} but the output "
                         f"needs {tuple(shape)}; does the codec's heatmap_size match the model's stride?")
    return _masked(target.heatmaps.float(), target.weights)


def _heatmaps_and_target(output: Tensor, target: Target, loss: str) -> tuple[Tensor, Tensor]:
    _check_heatmap_output(output, loss)
    return output.float(), _target_heatmaps(target, output.shape, loss)
