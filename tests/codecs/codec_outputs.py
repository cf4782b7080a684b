"""Network outputs of every head kind for the codec tests: what ``codec.decode`` reads.

A heatmap codec reads (N, K, Hh, Wh) maps, SimCC a pair of per-axis logits (N, K, Wx), (N, K, Hy),
RLE a regression head's (N, K, 4) (:attr:`h3r.codecs.Codec.head`).
"""
from __future__ import annotations

import torch

from h3r.codecs import H3R, SimCC, SoftArgmax
from h3r.codecs.base import gaussian_heatmaps


def random_output(codec, n: int, k: int, device="cpu", generator: torch.Generator | None = None):
    """Uniform noise in [0, 1) of the shape ``codec.decode`` reads, for N samples and K keypoints."""
    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(device)

    wh, hh = codec.heatmap_size
    if codec.head == "simcc":
        return rand(n, k, wh), rand(n, k, hh)
    if codec.head == "regression":
        return rand(n, k, 4) - 0.5
    return rand(n, k, hh, wh)


def decodable_output(codec, keypoints: torch.Tensor):
    """An output each codec's decoder reads as the given keypoints (N, K, 2) (input px): Gaussians
    at the exact points, log-Gaussians (logits) for the softmax-weighted decoders; per-axis
    log-Gaussians for SimCC; the exact mean for RLE."""
    uv = codec.to_heatmap(keypoints)
    if codec.head == "regression":
        return torch.cat([uv, torch.zeros_like(uv)], dim=-1)
    xs, ys = (torch.arange(s, device=uv.device) for s in codec.heatmap_size)
    dx2, dy2 = (xs - uv[..., 0:1]) ** 2, (ys - uv[..., 1:2]) ** 2
    if isinstance(codec, SimCC):
        return -dx2 / 2, -dy2 / 2
    if isinstance(codec, SoftArgmax) or (isinstance(codec, H3R) and codec.weighting == "softmax"):
        return -(dx2[..., None, :] + dy2[..., :, None]) / 2
    return gaussian_heatmaps(uv, codec.heatmap_size, 2.0)


def mirror_output(codec, output):
    """The output of the mirrored image, for a codec under the ``"center"`` alignment."""
    if codec.head == "simcc":
        return output[0].flip(-1), output[1]
    if codec.head == "regression":
        return output * torch.tensor([-1.0, 1.0, 1.0, 1.0], device=output.device)
    return output.flip(-1)


def apply(output, fn):
    """``fn`` on the output's tensor, or on each of SimCC's pair."""
    return tuple(fn(o) for o in output) if isinstance(output, tuple) else fn(output)
