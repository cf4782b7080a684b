"""H3R in mmpose 1.x: the codec ``H3RHeatmap`` and the loss ``H3RSpatialCELoss``.

Importing this module registers both, so an mmpose config only needs::

    custom_imports = dict(imports=['h3r.integrations.mmpose'], allow_failed_imports=False)
    codec = dict(type='H3RHeatmap', input_size=(192, 256), heatmap_size=(48, 64), seed=0)
    model = dict(..., head=dict(type='HeatmapHead', ..., loss=dict(type='H3RSpatialCELoss'),
                                decoder=codec))

All the math is :class:`h3r.codecs.H3R`'s and :func:`h3r.losses.spatial_ce`'s; this module only
converts between mmpose's numpy, one-instance-per-call contract and h3r's batched torch one.
It imports ``mmpose.registry`` and ``mmpose.codecs`` only: ``mmpose.models``, ``mmpose.datasets``
and ``mmpose.evaluation`` import ``xtcocotools`` (whose wheels are built against numpy 1), so they
are left to the training run that needs them.

Coordinates
    Keypoints are in input pixels of the crop (mmpose's ``transformed_keypoints``), pixel centres
    at integers. ``align`` says where heatmap cell ``u`` sits in input pixels (:mod:`h3r.geometry`):

    ``"corner"`` (default) ``x = s * u``, index times stride: what mmpose's ``MSRAHeatmap`` (and
        its DARK variant) use (``keypoints / scale_factor`` to encode, ``* scale_factor`` to
        decode), and the official H3R decoder. A drop-in replacement for ``MSRAHeatmap``.
        Representable keypoints: ``0 <= x <= s (Wh - 1)``; the last ``s`` pixels are masked.
        Flipping the image moves a point by ``(s - 1) / s`` cell on the flipped heatmap, which
        mmpose's ``test_cfg=dict(flip_test=True, shift_heatmap=True)`` corrects by a whole cell.
    ``"center"``  ``x = s (u + 1/2) - 1/2``: cell ``i`` pools input pixels ``s i ... s i + s - 1``
        (h3r's own convention). Decoded points move by ``(s - 1) / 2`` px (1.5 px at stride 4)
        against ``"corner"``, so encode and decode must agree, and a model trained with one must
        be decoded with the same one. Flipping is exact: use ``shift_heatmap=False``.
        Representable keypoints: the image less its outer ``(s - 1) / 2`` px.

    Keypoints that are invisible (``keypoints_visible < 0.5``, mmpose's rule), off the input or
    outside the representable range get weight 0 and an all-zero heatmap; they are never clipped.

Randomness and reproducibility
    Each :meth:`H3RHeatmap.encode` is one randomized-rounding draw per keypoint.

    ``seed=None`` draws from torch's global generator, as mmpose's other random transforms draw
    from numpy's: reproducible when the run is seeded (``randomness=dict(seed=...)`` in mmengine,
    whose DataLoader workers then get distinct per-worker, per-epoch torch seeds).
    ``seed=int`` keeps a private ``torch.Generator`` on the codec. In the main process
    (``num_workers=0``) it is seeded with ``seed`` and the draws depend on nothing else. A
    DataLoader worker holds a copy of the codec, so the copies would all repeat the same stream;
    instead each worker re-seeds its copy on its first draw from ``(seed, worker seed)``, where
    the worker seed is PyTorch's ``get_worker_info().seed`` (a base seed drawn by the main
    process for every epoch's workers, plus the worker id): workers draw independent streams, a
    new one every epoch unless ``persistent_workers=True``, and the whole is reproducible when
    the run is seeded.

Decoding
    ``decode`` takes one instance's heatmaps (K, H, W), as mmpose's codecs do; ``batch_decode``
    takes the head's whole output (B, K, H, W), on its device, and mmpose's heads use it
    (``support_batch_decoding``). The defaults (top-9, softmax over the raw outputs) are the
    official decoder, meant for the logits of a head trained with :class:`H3RSpatialCELoss`;
    ``weighting="normalized"`` reads the maps as probabilities instead (see :class:`h3r.codecs.H3R`).
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor, nn

INSTALL_HINT = (
    "h3r.integrations.mmpose needs mmpose 1.x with mmengine and mmcv (mmcv-lite is enough for the "
    "codec and the loss). Install them with\n"
    "    pip install mmengine mmcv-lite munkres json-tricks opencv-python-headless\n"
    "    pip install --no-deps mmpose==1.3.2\n"
    "(`make peer` does this in the repository's venv; mmpose's own pins ask for the GUI opencv "
    "and mmcv's compiled ops, which the codec and the loss do not need)."
)

try:
    from mmpose.codecs.base import BaseKeypointCodec
    from mmpose.registry import KEYPOINT_CODECS, MODELS
except ImportError as error:  # mmpose, mmengine or mmcv missing
    raise ImportError(f"{INSTALL_HINT}\n(the import failed with: {error})") from error

from h3r.codecs.base import Target  # noqa: E402
from h3r.codecs.h3r import H3R  # noqa: E402
from h3r.losses import spatial_ce  # noqa: E402

__all__ = ["H3RHeatmap", "H3RSpatialCELoss", "INSTALL_HINT"]


@KEYPOINT_CODECS.register_module(force=True)
class H3RHeatmap(BaseKeypointCodec):
    """Randomized-rounding heatmaps (Yu & Tao, TPAMI 2021) behind mmpose's codec interface.

    Encoded:
        - heatmaps (np.ndarray): float32 (K, H, W), one draw per keypoint (one-hot by default)
        - keypoint_weights (np.ndarray): float32 (N, K) with N = 1: the visibility where the
          keypoint is encoded, 0 where it is masked

    Args:
        input_size (tuple): image size ``(w, h)``, as mmpose.
        heatmap_size (tuple): heatmap size ``(W, H)``, as mmpose; at least 2x2.
        target, sigma, select, k, radius, weighting: as :class:`h3r.codecs.H3R`
            (defaults: one-hot targets, top-9 softmax decoding).
        align (str): ``"corner"`` (mmpose's MSRA convention, the default) or ``"center"``;
            see the module docstring.
        randomize (bool): ``False`` encodes the expectation over the draws (the bilinear map,
            deterministic) instead of one draw. Such maps are probabilities: decode them with
            ``weighting="normalized"`` (the default softmax is for logits).
        seed (int, optional): seed of the codec's own generator (see the module docstring).
    """

    label_mapping_table = dict(keypoint_weights="keypoint_weights")
    field_mapping_table = dict(heatmaps="heatmaps")

    def __init__(self, input_size, heatmap_size, target: str = "onehot", sigma: float = 2.0,
                 select: str = "topk", k: int = 9, radius: int = 1, weighting: str = "softmax",
                 align: str = "corner", randomize: bool = True, seed: int | None = None) -> None:
        super().__init__()
        self.input_size, self.heatmap_size = tuple(input_size), tuple(heatmap_size)
        self.codec = H3R(self.input_size, self.heatmap_size, target=target, sigma=sigma, select=select,
                         k=k, radius=radius, weighting=weighting, align=align)
        if seed is not None and not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        self.randomize, self.seed = bool(randomize), seed
        self._generator: torch.Generator | None = None
        self._owner: tuple[int, int] | None = None  # (pid, worker id) the generator was seeded for

    def __repr__(self) -> str:
        return f"{type(self).__name__}(codec={self.codec!r}, randomize={self.randomize}, seed={self.seed})"

    @property
    def generator(self) -> torch.Generator | None:
        """The generator of the next draw: None (torch's global one) when ``seed`` is None."""
        if self.seed is None:
            return None
        info = torch.utils.data.get_worker_info()
        owner = None if info is None else (os.getpid(), info.id)
        if self._generator is None or owner != self._owner:
            seed = self.seed if info is None else worker_seed(self.seed, info.seed)
            self._generator = torch.Generator().manual_seed(seed)
            self._owner = owner
        return self._generator

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        """Keypoints (1, K, 2) in input pixels and visibility (1, K) -> ``heatmaps`` (K, H, W)
        and ``keypoint_weights`` (1, K), float32."""
        keypoints = np.asarray(keypoints)
        if keypoints.ndim != 3 or keypoints.shape[0] != 1 or keypoints.shape[2] != 2:
            raise ValueError(f"{type(self).__name__} encodes one instance per call, as mmpose's heatmap "
                             f"codecs: keypoints of shape (1, K, 2), got {keypoints.shape}")
        if keypoints_visible is None:
            keypoints_visible = np.ones(keypoints.shape[:2], dtype=np.float32)
        keypoints_visible = np.asarray(keypoints_visible, dtype=np.float32)
        if keypoints_visible.shape != keypoints.shape[:2]:
            raise ValueError(f"keypoints_visible must have shape {keypoints.shape[:2]}, "
                             f"got {keypoints_visible.shape}")
        xy = torch.from_numpy(np.ascontiguousarray(keypoints, dtype=np.float32))
        visible = torch.from_numpy(keypoints_visible >= 0.5)
        if self.randomize:
            target = self.codec.encode(xy, visible, generator=self.generator)
        else:
            target = self.codec.expected_target(xy, visible)
        weights = keypoints_visible * target.weights.numpy()
        return dict(heatmaps=target.heatmaps[0].numpy(), keypoint_weights=weights.astype(np.float32))

    def decode(self, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps (K, H, W) of one instance -> keypoints (1, K, 2) in input pixels and scores
        (1, K) (the maximum of each map), float32."""
        heatmaps = torch.as_tensor(np.asarray(encoded))
        if heatmaps.ndim != 3:
            raise ValueError(f"{type(self).__name__}.decode takes one instance's heatmaps (K, H, W), "
                             f"got shape {tuple(heatmaps.shape)}; use batch_decode for (B, K, H, W)")
        keypoints, scores = self.codec.decode(heatmaps[None])
        return keypoints.numpy(), scores.numpy()

    def batch_decode(self, batch_heatmaps: Tensor) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """A head's output (B, K, H, W) (a tensor on any device) -> per instance keypoints
        (1, K, 2) and scores (1, K), the lists mmpose's heads expect; decoded in one batch."""
        keypoints, scores = self.codec.decode(torch.as_tensor(batch_heatmaps).detach())
        keypoints, scores = keypoints.cpu().numpy(), scores.cpu().numpy()
        return [kp[None] for kp in keypoints], [s[None] for s in scores]


def worker_seed(seed: int, worker: int) -> int:
    """The seed of a DataLoader worker's generator: a hash of the codec's seed and the worker's
    torch seed (distinct per worker and per epoch's workers)."""
    return int(np.random.SeedSequence([seed, worker]).generate_state(1, np.uint64)[0])


@MODELS.register_module(force=True)
class H3RSpatialCELoss(nn.Module):
    """Spatial-softmax cross-entropy on H3R targets, with mmpose's heatmap-loss signature.

    ``forward(output, target, target_weights)`` with logits and targets (B, K, H, W) and weights
    (B, K) is :func:`h3r.losses.spatial_ce`: per keypoint ``-sum_i q_i log softmax(output)_i``
    with ``q`` the target normalised to sum 1 (``-log p`` of the drawn cell for one-hot targets),
    then ``sum(w * l) / sum(w)`` over keypoints (0 when every weight is 0), times ``loss_weight``.

    Args:
        use_target_weight (bool): weight keypoints by ``target_weights``. Defaults to ``True``
            (unlike ``KeypointMSELoss``): a masked keypoint has an all-zero target, which would
            otherwise still count in the mean. Without weights every keypoint has weight 1.
        loss_weight (float): scale of the loss. Defaults to 1.
    """

    def __init__(self, use_target_weight: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.use_target_weight, self.loss_weight = use_target_weight, loss_weight

    def forward(self, output: Tensor, target: Tensor, target_weights: Tensor | None = None) -> Tensor:
        if output.ndim != 4 or target.shape != output.shape:
            raise ValueError(f"{type(self).__name__} takes output and target of one shape (B, K, H, W), "
                             f"got {tuple(output.shape)} and {tuple(target.shape)}")
        if target_weights is None or not self.use_target_weight:
            weights = torch.ones(output.shape[:2], device=output.device)
        elif tuple(target_weights.shape) != tuple(output.shape[:2]):
            raise ValueError(f"target_weights must be keypoint-wise {tuple(output.shape[:2])}, got "
                             f"{tuple(target_weights.shape)} (pixel-wise weights are not supported)")
        else:
            weights = target_weights.float()
        unused = torch.zeros(output.shape[:2] + (2,), device=output.device)  # spatial_ce reads no keypoint
        return spatial_ce(output, Target(target, unused, weights)) * self.loss_weight
