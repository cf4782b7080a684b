"""RLE: regression with residual log-likelihood estimation (Li et al., ICCV 2021).

The network regresses each keypoint directly from globally pooled features, as a mean ``mu`` and
a scale ``sigma`` per axis (:class:`h3r.models.heads.RegressionHead`); the loss
(:func:`h3r.losses.rle`) is the negative log-likelihood of the target under a density whose shape
a normalizing flow learns. There are no heatmap cells: coordinates are in units of the image
side, ``heatmap_size = (1, 1)`` in :mod:`h3r.geometry`'s terms, so that under the default
``"center"`` alignment ``u = (x + 1/2) / W - 1/2`` runs over [-1/2, 1/2] across the image, and under
``"corner"`` ``u = x / W``, mmpose's ``RegressionLabel`` normalisation.
"""
from __future__ import annotations

import torch
from torch import Tensor

from h3r.codecs.base import Codec, Target, register_codec


@register_codec(presets={"rle": {"loss": "rle"}})
class RLE(Codec):
    """Coordinates normalised by the image side; decodes the regressed mean.

    Args:
        input_size: ``(width, height)``.
        heatmap_size: not used (there is no heatmap); accepted so that
            :func:`h3r.codecs.build_codec` builds every codec alike.
        align: coordinate alignment (default ``"center"``; mmpose's is ``"corner"``).

    ``encode`` returns ``Target(heatmaps=None, keypoints=u, weights)``: every visible keypoint on
    the image is represented. ``decode`` takes the head's output (N, K, 4): ``mu`` (x, y) and the
    logits of ``sigma`` (x, y); scores are ``1 - mean(sigmoid(logits))`` (mmpose's
    ``RegressionLabel.decode``), high where the network is sure.
    """

    name = "rle"
    head = "regression"

    def __init__(self, input_size, heatmap_size=None, align: str | None = None):
        super().__init__(input_size, (1, 1), align)

    def encode(self, keypoints, visible=None, *, generator=None) -> Target:
        uv, weights = self.prepare(keypoints, visible)
        return Target(None, uv, weights)

    def decode(self, output: Tensor) -> tuple[Tensor, Tensor]:
        """(N, K, 4) -> keypoints (N, K, 2) in input pixels, scores (N, K)."""
        if not isinstance(output, Tensor) or output.ndim != 3 or output.shape[-1] != 4:
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(f"RLE decodes a regression head's output (N, K, 4) (mu, sigma logits), got {shape}")
        output = output.float()
        return self.to_input(output[..., :2]), 1 - torch.sigmoid(output[..., 2:]).mean(-1)
