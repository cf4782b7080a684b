"""Chapters 1 and 2 at a glance: the theory's claims (linear growth of vanilla's error, unbiased,
lossless) measured by Monte Carlo with the library's codecs, for the findings; the chapters' own
analysis is :mod:`h3r.analysis`.
"""
from __future__ import annotations

# --- the design and its numbers ------------------------------------------------------------


def theory_checks(input_size: int = 256, stride: int = 4, points: int = 256, draws: int = 1024,
                  seed: int = 0) -> dict:
    """The three theory claims measured on random keypoints with the library's codecs:
    ``floor_over_round`` and ``round_per_stride`` (vanilla's mean 2-D error, which the closed form
    puts at 2 and ``h3r.analysis.CORNER_MEAN / 2``), the RMS error of the mean of ``draws``
    randomized decodes and its sampling-noise prediction (unbiased), and the largest error of
    decoding the expected target (lossless)."""
    import math

    import torch

    from h3r import analysis
    from h3r.codecs import build_codec

    g = torch.Generator().manual_seed(seed)
    kp = analysis.uniform_keypoints(points, input_size, stride, g, margin=2)
    error = {q: e.norm(dim=-1).mean().item() for q, e in analysis.vanilla_errors(kp, input_size, stride).items()}
    h3r = build_codec("h3r", input_size, stride=stride, weighting="normalized", k=4)
    mean_error = analysis.mean_decode_convergence(h3r, kp, [draws], g).rms_error.item()
    noise = analysis.sampling_noise(h3r, kp) / math.sqrt(draws)
    lossless = analysis.round_trip_errors(h3r, kp, "expected").norm(dim=-1).max().item()
    return {"floor_over_round": error["floor"] / error["round"], "round_per_stride": error["round"] / stride,
            "mean_error": mean_error, "noise": noise, "lossless": lossless, "stride": stride, "draws": draws}
