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
``dsnt``        ``l1_coords`` plus DSNT's Jensen-Shannon regulariser toward a Gaussian.
``simcc_kl``    SimCC's per-axis KL divergence (mmpose's ``KLDiscretLoss``), on a SimCC head's
                ``(x_logits, y_logits)`` against ``target.x_labels``, ``target.y_labels``.
``rle``         residual log-likelihood estimation (mmpose's ``RLELoss``) on a regression head's
                (N, K, 4), with the :class:`RealNVP` flow the head holds.
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from torch import nn

from h3r.codecs.base import Target, gaussian_heatmaps
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
    return _cell_bce(output[:, 1].float() - output[:, 0].float(), heatmaps, target.weights, pos_weight, prior, gamma)


def sigmoid_ce(output: Tensor, target: Target, pos_weight: float | str = 1.0, prior: float | str = 0.0,
               gamma: float = 0.0) -> Tensor:
    """One logit per cell (N, K, Hh, Wh), a sigmoid each: the per-cell binary cross-entropy of
    :func:`binary_ce` on a one-channel head, the logit being ``log p / (1 - p)`` itself.

    ``pos_weight`` may be ``"balanced"``: ``Hh * Wh - 1``, the background cells per foreground
    cell. ``prior`` (default 0: the plain cross-entropy; ``"auto"``: ``-log(Hh Wh)``) and ``gamma``
    (focal) as in :func:`binary_ce`.
    """
    logits, heatmaps = _heatmaps_and_target(output, target, "sigmoid_ce")
    if pos_weight == "balanced":
        pos_weight = float(output.shape[-1] * output.shape[-2] - 1)
    return _cell_bce(logits, heatmaps, target.weights, pos_weight, prior, gamma)


def _cell_bce(odds: Tensor, heatmaps: Tensor, weights: Tensor, pos_weight, prior, gamma: float) -> Tensor:
    """The per-cell binary cross-entropy of logits ``odds + prior`` (N, K, Hh, Wh) against
    ``heatmaps``, averaged over each map's cells, weighted over keypoints (see :func:`binary_ce`)."""
    if not (isinstance(pos_weight, (int, float)) and pos_weight > 0):
        raise ValueError(f"pos_weight must be a positive number, got {pos_weight!r}")
    if not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if prior == "auto":
        prior = -math.log(odds.shape[-1] * odds.shape[-2])
    if not isinstance(prior, (int, float)):
        raise ValueError(f"prior must be a number or 'auto', got {prior!r}")
    odds = odds + prior  # log p_fg / p_bg
    log_fg, log_bg = F.logsigmoid(odds), F.logsigmoid(-odds)
    fg_term, bg_term = heatmaps * log_fg, (1 - heatmaps) * log_bg
    if gamma:
        fg_term = fg_term * (1 - log_fg.exp()) ** gamma
        bg_term = bg_term * (1 - log_bg.exp()) ** gamma
    per_cell = -(pos_weight * fg_term + bg_term)
    return weighted_mean(per_cell.mean(dim=(-2, -1)), weights)


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
    return weighted_mean(_l1_per_keypoint(output, target, beta, coords_fn, "l1_coords"), target.weights)


def dsnt(output: Tensor, target: Target, beta: float = 1.0, sigma: float = 1.0, js_weight: float = 1.0) -> Tensor:
    """DSNT (Nibali et al., 2018): :func:`l1_coords` plus ``js_weight`` times the Jensen-Shannon
    divergence, summed over the cells, between ``p = softmax(beta * h)`` over the Hh*Wh cells and
    ``g``, a Gaussian of ``sigma`` cells on the exact keypoint normalised to sum 1.

    The defaults are mmpose's: ``DSNTLoss``'s sigma of 1 cell, the JS term added with weight 1 as
    ``DSNTHead`` adds its ``JSDiscretLoss``. mmpose's distance term is a smooth L1 on coordinates
    normalised by the map size; this one is :func:`l1_coords`'s, in cells.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if not js_weight >= 0:
        raise ValueError(f"js_weight must be >= 0, got {js_weight}")
    distance = _l1_per_keypoint(output, target, beta, None, "dsnt")
    p = (beta * output.float()).flatten(2).softmax(-1)
    size = (output.shape[-1], output.shape[-2])
    g = gaussian_heatmaps(_masked(target.keypoints.float(), target.weights), size, sigma).flatten(2)
    g = g / g.sum(-1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)
    return weighted_mean(distance + js_weight * js_divergence(p, g), target.weights)


def js_divergence(p: Tensor, q: Tensor) -> Tensor:
    """``JS(p, q) = (KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2``, over the last axis of
    distributions (..., C); 0 log 0 = 0."""
    m = (p + q) / 2
    return ((torch.xlogy(p, p) - torch.xlogy(p, m)) + (torch.xlogy(q, q) - torch.xlogy(q, m))).sum(-1) / 2


def simcc_kl(output: tuple[Tensor, Tensor], target: Target, beta: float = 1.0, label_softmax: bool = False,
             label_beta: float = 10.0, bins: str = "mean") -> Tensor:
    """SimCC head output ``(x_logits (N, K, Wx), y_logits (N, K, Hy))`` against the target's labels:
    per axis ``KL(q || softmax(beta * logits))`` averaged over the bins (``bins="sum"``: summed,
    the scale of a cross-entropy, which for a one-hot label it equals), summed over the two axes.

    ``q`` is the label as given (a normalised Gaussian or a one-hot, a probability vector), or with
    ``label_softmax`` ``softmax(label_beta * label)``. The defaults are those of mmpose's
    ``KLDiscretLoss`` (RTMPose's configs set ``beta=10, label_softmax=True``). Per keypoint it is
    mmpose's; mmpose then sums over samples and divides by K, this loss takes the weighted mean
    over keypoints, as every loss here.
    """
    if not (isinstance(output, (tuple, list)) and len(output) == 2):
        raise ValueError(f"simcc_kl takes a SimCC head's output (x_logits, y_logits), got "
                         f"{getattr(output, 'shape', type(output).__name__)}; build the model with head='simcc'")
    if target.x_labels is None or target.y_labels is None:
        raise ValueError("simcc_kl needs a target with per-axis labels (x_labels, y_labels), as the simcc codec "
                         "encodes")
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if bins not in ("mean", "sum"):
        raise ValueError(f"bins must be 'mean' (mmpose's KLDiscretLoss) or 'sum', got {bins!r}")
    per_keypoint = 0
    for logits, labels, axis in zip(output, (target.x_labels, target.y_labels), "xy"):
        if logits.shape != labels.shape:
            raise ValueError(f"{axis} logits have shape {tuple(logits.shape)} but the labels {tuple(labels.shape)}; "
                             "were the head and the codec built for the same input size and split ratio?")
        log_p = (beta * logits.float()).log_softmax(-1)
        q = _masked(labels.float(), target.weights)
        if label_softmax:
            q = (label_beta * q).softmax(-1)
        kl = F.kl_div(log_p, q, reduction="none")
        per_keypoint = per_keypoint + (kl.mean(-1) if bins == "mean" else kl.sum(-1))
    return weighted_mean(per_keypoint, target.weights)


class RealNVP(nn.Module):
    """A RealNVP flow on R^2 (Dinh et al., 2017) as RLE's reference code and mmpose build it: six
    affine couplings with alternating masks, each scale and translation a 2-64-64-2 MLP (LeakyReLU;
    tanh on the scale), Xavier-uniform weights with gain 0.01 (the flow starts near the identity),
    a standard normal base density.

    ``inverse(x)`` maps data x (B, 2) to the base z and ``log |det dz/dx|`` (B,); ``forward(z)``
    maps back; ``log_prob(x)`` is ``log N(z; 0, I) + log |det dz/dx|``.
    """

    def __init__(self, hidden: int = 64, couplings: int = 6):
        super().__init__()
        self.register_buffer("mask", torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat(couplings // 2, 1))
        self.s = nn.ModuleList(self._mlp(hidden, nn.Tanh()) for _ in range(couplings))
        self.t = nn.ModuleList(self._mlp(hidden) for _ in range(couplings))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=0.01)

    @staticmethod
    def _mlp(hidden: int, last: nn.Module | None = None) -> nn.Sequential:
        layers = [nn.Linear(2, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(), nn.Linear(hidden, 2)]
        return nn.Sequential(*layers, *([last] if last is not None else []))

    def _coupling(self, i: int, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The kept part of ``x`` under mask ``i`` and the scale and shift of the other part."""
        keep = self.mask[i] * x
        return keep, self.s[i](keep) * (1 - self.mask[i]), self.t[i](keep) * (1 - self.mask[i])

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data (B, 2) -> base z (B, 2) and ``log |det dz/dx|`` (B,)."""
        z, log_det = x, x.new_zeros(x.shape[0])
        for i in reversed(range(len(self.mask))):
            keep, s, t = self._coupling(i, z)
            z = keep + (1 - self.mask[i]) * (z - t) * torch.exp(-s)
            log_det = log_det - s.sum(-1)
        return z, log_det

    def forward(self, z: Tensor) -> Tensor:
        """Base z (B, 2) -> data x (B, 2), the inverse of :meth:`inverse`."""
        x = z
        for i in range(len(self.mask)):
            keep, s, t = self._coupling(i, x)
            x = keep + (1 - self.mask[i]) * (x * torch.exp(s) + t)
        return x

    def log_prob(self, x: Tensor) -> Tensor:
        z, log_det = self.inverse(x)
        return -0.5 * z.square().sum(-1) - math.log(2 * math.pi) + log_det


Q_DISTRIBUTIONS = ("laplace", "gaussian")


def rle(output: Tensor, target: Target, flow: RealNVP | None = None, residual: bool = True,
        q_dis: str = "laplace") -> Tensor:
    """Residual log-likelihood estimation (Li et al., ICCV 2021) on a regression head's output
    (N, K, 4): ``mu`` (x, y) and the logits of ``sigma`` (x, y), against ``target.keypoints``.

    With ``e = (mu - u*) / sigma`` (``sigma = sigmoid(logits)``) and ``log phi`` the flow's
    log-density of ``e``, per axis ``log sigma - log phi(e)``, plus with ``residual`` the negative
    log-density of ``q`` (``"laplace"``: ``log 2 sigma + |e|``, ``"gaussian"``:
    ``log sqrt(2 pi) sigma + e^2 / 2``), summed over both axes: the flow learns the residual of
    the density against ``q``. As the reference code and mmpose's ``RLELoss``, ``log phi``, a
    density of the 2-D error, is subtracted on each axis. ``flow`` is the head's
    (:class:`h3r.models.heads.RegressionHead`), trained with the network.
    """
    if flow is None:
        raise ValueError("rle needs the flow of the regression head (build_loss('rle', flow=model.head.flow))")
    if q_dis not in Q_DISTRIBUTIONS:
        raise ValueError(f"q_dis must be one of {Q_DISTRIBUTIONS}, got {q_dis!r}")
    if not isinstance(output, Tensor) or output.ndim != 3 or output.shape[-1] != 4:
        raise ValueError(f"rle takes a regression head's output (N, K, 4), got "
                         f"{getattr(output, 'shape', type(output).__name__)}; build the model with head='regression'")
    output = output.float()
    keypoints = _masked(target.keypoints.float(), target.weights)
    sigma = output[..., 2:].sigmoid()
    error = (output[..., :2] - keypoints) / (sigma + 1e-9)
    log_phi = flow.log_prob(error.reshape(-1, 2)).reshape(error.shape[:2] + (1,))
    loss = sigma.log() - log_phi
    if residual:
        if q_dis == "laplace":
            loss = loss + (2 * sigma).log() + error.abs()
        else:
            loss = loss + (math.sqrt(2 * math.pi) * sigma).log() + error.square() / 2
    return weighted_mean(loss.sum(-1), target.weights)


LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse": mse, "spatial_ce": spatial_ce, "binary_ce": binary_ce, "foreground_ce": foreground_ce,
    "sigmoid_ce": sigmoid_ce,
    "l1_coords": l1_coords, "dsnt": dsnt, "simcc_kl": simcc_kl, "rle": rle,
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
    if not isinstance(output, Tensor):
        raise ValueError(f"{loss} takes heatmaps (N, K, H, W), got a {type(output).__name__}")
    if output.ndim == 5:
        raise ValueError(f"{loss} takes heatmaps (N, K, H, W) but got a binary head's output "
                         f"{tuple(output.shape)}; use binary_ce, or h3r.models.binary_scores first")
    if output.ndim != 4:
        raise ValueError(f"{loss} takes heatmaps (N, K, H, W), got shape {tuple(output.shape)}")


def _l1_per_keypoint(output: Tensor, target: Target, beta: float, coords_fn, loss: str) -> Tensor:
    """(N, K) ``|u - u*| + |v - v*|`` of the decoded heatmaps, heatmap units."""
    _check_heatmap_output(output, loss)
    output = output.float()
    if coords_fn is None:
        size = (output.shape[-1], output.shape[-2])
        coords_fn = lambda h: SoftArgmax(size, size, beta=beta).decode_heatmap_units(h)[0]  # noqa: E731
    keypoints = _masked(target.keypoints.float(), target.weights)
    if keypoints.shape != output.shape[:2] + (2,):
        raise ValueError(f"target keypoints have shape {tuple(keypoints.shape)} but the output "
                         f"{tuple(output.shape)} needs {tuple(output.shape[:2]) + (2,)}")
    return (coords_fn(output) - keypoints).abs().sum(dim=-1)


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
