"""Codec-only error on real annotations: the target error beside every learned result.

Each ground-truth landmark is pushed through the evaluation chain of a trained model with the
network replaced by the codec's own training target::

    original pixels --A--> crop pixels --encode--> target --decode--> crop pixels --A^-1--> original --> NME

where ``A`` is the dataset's test-time crop (:mod:`h3r.data.transforms`) and the NME uses the
dataset's normaliser. Nothing is learned, so the result is the error the codec alone adds at that
heatmap resolution, on the landmark distribution of a real benchmark: the error of a network that
reproduced its training target exactly. It is not a floor: a network beats it when its output is
not its training target, e.g. where a decoder reads sub-cell information from a network's smooth
output (argmax-quarter, DARK on a rounded Gaussian), or for soft-argmax, whose L1 loss on the
coordinates does not make the network output a Gaussian at all.

A :class:`RoundTrip` says which target is decoded and by which decoder: the codec's target (one
randomized draw for H3R), H3R's expected target (what a network trained on the draws converges
to), or a target decoded by *another* preset (e.g. our centre-aligned H3R target read by the
official decoder). The target is handed to the decoder as the decoder reads a trained network's
output (:func:`decoder_input`). The flip test averages with the decode of the mirrored crop,
mapped back with the layout's ``flip_index``, as :func:`h3r.evaluation.predict` does.
"""
from __future__ import annotations

from h3r._extras import require

require("train", "h3r.analysis")

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from h3r import metrics
from h3r.codecs import CODECS, H3R, Codec, SoftArgmax, build_codec
from h3r.config import PRESETS, heatmap_presets, preset
from h3r.geometry import Size, apply_affine, flip_keypoints
from h3r.data.transforms import inverse
from h3r.protocols import PROTOCOLS, face_benchmarks



@dataclass
class LandmarkSet:
    """Ground-truth landmarks and the test-time crops they are seen through.

    keypoints:   (N, K, 2) float64 original-image pixels, NaN where not annotated
    visible:     (N, K) bool
    affines:     (N, 2, 3) float64 original -> crop pixels
    normalizers: (N,) float64 the protocol's normalising distance, original pixels
    """

    name: str
    keypoints: Tensor
    visible: Tensor
    affines: Tensor
    normalizers: Tensor
    input_size: Size
    flip_index: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.keypoints)

    def spread(self, n: int | None) -> LandmarkSet:
        """``n`` samples evenly spaced over the set, first and last included (all for None), so
        that a subset still covers every part of a split (300W's common and challenging faces)."""
        if n is None or n >= len(self):
            return self
        index = torch.linspace(0, len(self) - 1, n).round().long()
        return replace(self, keypoints=self.keypoints[index], visible=self.visible[index],
                       affines=self.affines[index], normalizers=self.normalizers[index])

    def crop_keypoints(self) -> Tensor:
        """(N, K, 2) float64 in crop pixels (NaN where not annotated)."""
        return apply_affine(self.keypoints, self.affines)


def landmark_set(dataset, name: str | None = None, limit: int | None = None) -> LandmarkSet:
    """The landmarks of an h3r dataset, its first ``limit`` samples.

    Real datasets give their annotations, boxes and unaugmented crop matrices (no image is read;
    build them with ``annotations_only=True`` when the images are absent). Synthetic ones are
    rendered, since their landmarks are drawn with the image; their crop is the image itself.
    """
    n = len(dataset) if limit is None else min(limit, len(dataset))
    name = name or f"{dataset.name}/{dataset.split}"
    if hasattr(dataset, "scene"):  # the synthetic benchmarks
        scenes = [dataset.scene(i) for i in range(n)]
        keypoints = torch.stack([torch.from_numpy(s.keypoints) for s in scenes]).double()
        identity = torch.eye(2, 3, dtype=torch.float64)
        return LandmarkSet(name, keypoints, torch.ones(keypoints.shape[:2], dtype=torch.bool),
                           identity.expand(n, 2, 3).clone(), torch.tensor([s.normalizer for s in scenes]).double(),
                           dataset.input_size, dataset.layout.flip_index)
    if dataset.transform.augment is not None:
        raise ValueError(f"{name}: codec-only error is measured on the test-time crop; build the dataset "
                         f"with augment=None")
    affines = torch.stack([dataset.transform.matrices(box)[1] for box in dataset.boxes[:n]])
    return LandmarkSet(name, torch.from_numpy(dataset.ann.keypoints[:n]).double(),
                       torch.from_numpy(dataset.ann.visible[:n]).bool(), affines,
                       torch.from_numpy(dataset.ann.normalizers[:n]).double(), dataset.input_size,
                       dataset.layout.flip_index)


def find_face_datasets(data_root=None, input_size: int = 256, names: list[str] | None = None,
                       **kwargs) -> tuple[dict, dict[str, str]]:
    """Every face benchmark (``names``, default all of :func:`h3r.protocols.face_benchmarks`) found
    under ``data_root``, its default test split (:data:`h3r.protocols.PROTOCOLS`), annotations only.

    Returns ``(found, missing)``: name -> dataset, and name -> the ``DatasetNotFoundError`` message
    saying what was looked for. Malformed annotations raise (they are not "missing").
    """
    from h3r.data.registry import build_dataset
    from h3r.data.annotated import DatasetNotFoundError

    found, missing = {}, {}
    for name in names or face_benchmarks():
        try:
            found[name] = build_dataset(name, PROTOCOLS[name].test_split, data_root=data_root, input_size=input_size,
                                        annotations_only=True, **kwargs)
        except DatasetNotFoundError as err:
            missing[name] = str(err)
    return found, missing


# --- round trips ------------------------------------------------------------------------------

@dataclass(frozen=True)
class RoundTrip:
    """What is decoded: the target of preset ``codec`` (``target="encode"``: one draw of the codec's
    training target; ``"expected"``: H3R's expectation over draws), read by ``decoder`` (a preset
    name; None: the codec itself) as it reads a network trained on that target (:func:`decoder_input`
    with its preset's loss, :attr:`h3r.config.Preset.loss`). The decoder gets the same heatmap size."""

    codec: str
    target: str = "encode"
    decoder: str | None = None


#: the rows of chapter 1's codec-only tables, chosen, not derived from the presets: the published heatmap
#: decoders, H3R both ways (one draw, the expected target), and our target read by the official decoder
ROUND_TRIPS = {
    "argmax-floor": RoundTrip("argmax-floor"),
    "argmax-round": RoundTrip("argmax-round"),
    "argmax-quarter": RoundTrip("argmax-quarter"),
    "dark": RoundTrip("dark"),
    "udp": RoundTrip("udp"),
    "soft-argmax": RoundTrip("soft-argmax"),
    "h3r (one draw)": RoundTrip("h3r"),
    "h3r (expected target)": RoundTrip("h3r", "expected"),
    "h3r-official (one draw)": RoundTrip("h3r-official"),
    "h3r-official (expected target)": RoundTrip("h3r-official", "expected"),
    "h3r target, official decoder": RoundTrip("h3r", "expected", "h3r-official"),
}


def decoder_input(codec: Codec, keypoints: Tensor, visible: Tensor | None = None, target: str = "encode",
                  generator: torch.Generator | None = None, decoder: Codec | None = None,
                  loss: str = "mse") -> tuple[Tensor, Tensor]:
    """The heatmaps ``decoder`` (default: the codec) reads in place of a network trained on the
    target of ``codec``, and the (N, K) weights of the keypoints they represent.

    keypoints (N, K, 2) crop pixels. The target (probabilities ``p``) is handed over as the decoder
    reads a trained network's output: an H3R decoder always gets
    :meth:`H3R.scores_from_probabilities` (``log p`` for its softmax weighting); any other decoder
    gets ``log p`` where ``loss`` (the loss a network is trained on this target with,
    :attr:`h3r.config.Preset.loss`) is the spatial-softmax cross-entropy, whose networks output
    logits ``log p`` up to a constant, and ``p`` itself otherwise (MSE regresses the target).
    Soft-argmax has no heatmap target: it gets the log of an exact Gaussian on the keypoint, whose
    spatial softmax is the distribution an integral-regression network learns.
    """
    if target not in ("encode", "expected"):
        raise ValueError(f"target must be 'encode' or 'expected', got {target!r}")
    if target == "expected" and not hasattr(codec, "expected_target"):
        raise ValueError(f"{codec.name} encodes deterministically: it has no expected target")
    decoder = decoder or codec
    if target == "expected":
        encoded = codec.expected_target(keypoints, visible)
    else:  # the generator draws randomized codecs' targets; the others ignore it
        encoded = codec.encode(keypoints, visible, generator=generator)
    probabilities = encoded.heatmaps
    if isinstance(codec, SoftArgmax):
        exact = build_codec("dark", codec.input_size, heatmap_size=codec.heatmap_size)
        probabilities = exact.encode(keypoints, visible).heatmaps
    if isinstance(decoder, H3R):
        return decoder.scores_from_probabilities(probabilities), encoded.weights
    if isinstance(codec, SoftArgmax) or loss == "spatial_ce":
        return probabilities.clamp_min(1e-30).log(), encoded.weights
    return probabilities, encoded.weights


def round_trip(codec: Codec, keypoints: Tensor, visible: Tensor | None = None, target: str = "encode",
               decoder: Codec | None = None, generator: torch.Generator | None = None,
               flip_index=None, cell_budget: int = 2**24, loss: str = "mse") -> tuple[Tensor, Tensor]:
    """Encode keypoints (N, K, 2) crop pixels, decode -> decoded (N, K, 2) float64 and the (N, K)
    bool mask of keypoints the target represents (elsewhere the decode is meaningless).

    ``decoder`` (default: the codec) reads the target as it would a network trained on it with
    ``loss`` (:func:`decoder_input`). ``flip_index`` (the layout's) adds the flip test: the mirrored
    keypoints are encoded and decoded too, mapped back and averaged. Works in chunks of samples of
    at most ``cell_budget`` heatmap cells, so memory stays bounded whatever the heatmap size.
    """
    decoder = decoder or codec
    if decoder.heatmap_size != codec.heatmap_size:
        raise ValueError(f"decoder heatmap {decoder.heatmap_size} differs from the codec's {codec.heatmap_size}")
    if visible is None:
        visible = torch.ones(keypoints.shape[:2], dtype=torch.bool, device=keypoints.device)
    visible = visible.bool()
    xy = torch.where(visible[..., None], keypoints, torch.zeros_like(keypoints)).float()
    width = codec.input_size[0]

    def once(points, vis):
        heatmaps, weights = decoder_input(codec, points, vis, target, generator, decoder, loss)
        return decoder.decode(heatmaps)[0].double(), weights > 0

    chunk = max(1, cell_budget // (keypoints.shape[1] * codec.heatmap_size[0] * codec.heatmap_size[1]))
    preds, masks = [], []
    for points, vis in zip(xy.split(chunk), visible.split(chunk)):
        pred, ok = once(points, vis)
        if flip_index is not None:
            order = torch.as_tensor(flip_index, device=points.device)
            mirrored, ok_m = once(flip_keypoints(points, width, order), vis[:, order])
            pred = (pred + flip_keypoints(mirrored, width, order)) / 2
            ok = ok & ok_m[:, order]
        preds.append(pred)
        masks.append(ok & vis)
    return torch.cat(preds), torch.cat(masks)


def codec_nme(landmarks: LandmarkSet, trip: RoundTrip, stride: int, flip_test: bool = False,
              generator: torch.Generator | None = None, device="cpu", codec_args=None) -> tuple[Tensor, Tensor]:
    """Per-sample NME (fraction) of a round trip at heatmap ``stride``, and the (N, K) mask of the
    keypoints it scored: visible ones the target represents. Samples where the codec represents no
    keypoint get NaN. Encoding and decoding run on ``device`` (the generator's)."""
    args = codec_args or (lambda name: {})
    codec = build_codec(trip.codec, landmarks.input_size, stride=stride, **args(trip.codec))
    decoder = None if trip.decoder is None else build_codec(trip.decoder, landmarks.input_size, stride=stride,
                                                              **args(trip.decoder))
    pred, scored = round_trip(codec, landmarks.crop_keypoints().to(device), landmarks.visible.to(device),
                              trip.target, decoder, generator, landmarks.flip_index if flip_test else None,
                              loss=preset(trip.codec).loss)
    pred, scored = inverse(pred.cpu(), landmarks.affines), scored.cpu()
    ok = scored.any(-1)
    out = torch.full((len(landmarks),), float("nan"), dtype=torch.float64)
    out[ok] = metrics.nme(pred[ok], landmarks.keypoints[ok], landmarks.normalizers[ok], scored[ok])
    return out, scored


def codec_nme_table(sets: list[LandmarkSet], strides, trips: dict[str, RoundTrip] = ROUND_TRIPS,
                    flip_test: bool = False, cell_budget: int | None = None, seed: int = 0,
                    device="cpu", codec_args=None) -> pd.DataFrame:
    """Long table of codec-only NME: one row per dataset x stride x round trip.

    Columns ``dataset, stride, heatmap, codec, flip_test, nme`` (mean over samples, in %),
    ``samples``, ``scored`` (fraction of the visible keypoints the target represents).
    ``cell_budget`` caps the heatmap cells encoded per round trip (keypoints x cells): a dataset
    is then evaluated on as many samples as fit, evenly spread over it (:meth:`LandmarkSet.spread`),
    fewer at fine strides (``samples`` says how many). Randomized draws come from a generator on
    ``device`` seeded with ``seed`` per dataset, so adding a dataset changes no other dataset's
    numbers. ``codec_args`` (preset name -> keyword arguments) overrides the presets' options.
    """
    rows = []
    for full in sets:
        generator = torch.Generator(device).manual_seed(seed)
        for stride in strides:
            wh, hh = full.input_size[0] // stride, full.input_size[1] // stride
            fits = None if cell_budget is None else max(1, cell_budget // (full.keypoints.shape[1] * wh * hh))
            lm = full.spread(fits)
            for label, trip in trips.items():
                nmes, scored = codec_nme(lm, trip, stride, flip_test, generator, device, codec_args)
                rows.append(dict(dataset=lm.name, stride=stride, heatmap=f"{wh}x{hh}", codec=label,
                                 flip_test=flip_test, nme=100 * nmes.nanmean().item(),
                                 samples=int(nmes.isfinite().sum()),
                                 scored=(scored.sum() / lm.visible.sum()).item()))
    return pd.DataFrame(rows)


# --- the mechanism: does a network learn the expected target? -------------------------------------

def neighbour_weights(logits: Tensor, keypoints: Tensor, codec: H3R, visible: Tensor | None = None) -> dict:
    """What a network trained on randomized one-hot targets predicts around each keypoint.

    logits (N, K, Hh, Wh), keypoints (N, K, 2) in input pixels. The theory needs the spatial
    softmax ``p`` of the logits to approach the expected target: the bilinear weights of the 4
    cells around the keypoint (:func:`h3r.codecs.rounding_neighbours`). Returns (N, K) tensors
    ``mass`` (the share of ``p`` on those 4 cells) and ``error`` (the mean absolute difference
    between ``p`` renormalised over the 4 cells and the bilinear weights), the (N, K, 4)
    ``predicted`` and ``bilinear`` weights, and the (N, K) bool ``valid`` (keypoints the codec
    represents). Batched; no loop over keypoints.
    """
    from h3r.codecs import rounding_neighbours
    from h3r.codecs.base import gather_2d

    target = codec.expected_target(keypoints, visible)
    valid = target.weights > 0
    uv = torch.where(valid[..., None], target.keypoints, torch.zeros_like(target.keypoints))
    cells, bilinear = rounding_neighbours(uv, codec.heatmap_size)
    n, k, hh, wh = logits.shape
    p = logits.float().reshape(n, k, hh * wh).softmax(-1).reshape(n, k, hh, wh)
    four = gather_2d(p, cells)  # (N, K, 4)
    mass = four.sum(-1)
    predicted = four / mass.clamp_min(torch.finfo(four.dtype).tiny)[..., None]
    return {"mass": mass, "error": (predicted - bilinear).abs().mean(-1), "predicted": predicted,
            "bilinear": bilinear, "valid": valid}


# --- the theory chapters (1-3): quantization error, unbiasedness, the codecs' targets ------------

#: mean distance from a corner of the unit square to a uniform point in it, (sqrt(2) + arsinh(1)) / 3
CORNER_MEAN = (math.sqrt(2) + math.asinh(1)) / 3


def vanilla_closed_form(stride: float) -> dict[str, dict[str, float]]:
    """The quantization error of vanilla heatmap regression (integer encoding, argmax decoding) at
    ``stride`` for a uniform fractional position, in input pixels: encoder (``floor``, ``round``)
    -> statistic -> value. Per axis ``mean``, ``mean |e|``, ``rms``, ``worst |e|``; the 2-D
    Euclidean ``mean ||e|| (2-D)`` and ``worst ||e|| (2-D)``."""
    s = stride
    return {
        "floor": {"mean": -s / 2, "mean |e|": s / 2, "rms": s / math.sqrt(3), "worst |e|": s,
                  "mean ||e|| (2-D)": CORNER_MEAN * s, "worst ||e|| (2-D)": math.sqrt(2) * s},
        "round": {"mean": 0.0, "mean |e|": s / 4, "rms": s / (2 * math.sqrt(3)), "worst |e|": s / 2,
                  "mean ||e|| (2-D)": CORNER_MEAN / 2 * s, "worst ||e|| (2-D)": s / math.sqrt(2)},
    }


def randomized_draw_norm(stride: float, grid: int = 400) -> float:
    """Mean Euclidean error of one randomized-rounding draw in 2-D, ``E||s (B - f)||`` with
    ``B ~ Bernoulli(f)`` per axis, over ``(f_x, f_y)`` uniform on ``[0, 1)^2`` (midpoint rule on a
    ``grid`` x ``grid`` lattice)."""
    f = (np.arange(grid) + 0.5) / grid
    fx, fy = np.meshgrid(f, f, indexing="ij")  # (grid, grid)
    bx, by = np.array([0, 0, 1, 1])[:, None, None], np.array([0, 1, 0, 1])[:, None, None]  # the 4 draws
    p = np.where(bx, fx, 1 - fx) * np.where(by, fy, 1 - fy)  # (4, grid, grid)
    return float(stride * (p * np.hypot(bx - fx, by - fy)).mean(axis=(1, 2)).sum())


def points_per_stride(strides, input_size: int, n_points: int, cell_budget: int) -> dict[int, int]:
    """Keypoints to draw at each stride: ``n_points``, fewer where ``cell_budget`` heatmap cells
    do not hold that many one-keypoint heatmaps."""
    return {s: min(n_points, cell_budget // (input_size // s) ** 2) for s in strides}


def uniform_keypoints(n: int, input_size: int, stride: int, generator: torch.Generator,
                      margin: int = 1) -> Tensor:
    """(n, 1, 2) keypoints uniform over an ``input_size`` square image, ``margin`` cells of
    ``stride`` pixels from its top-left border and ``margin + 1`` from its bottom-right one, on the
    generator's device (every neighbour randomized rounding can pick is on the heatmap)."""
    low, high = margin * stride, input_size - 1 - (margin + 1) * stride
    return low + (high - low) * torch.rand(n, 1, 2, generator=generator, device=generator.device)


def round_trip_errors(codec: Codec, keypoints: Tensor, target: str = "encode",
                      generator: torch.Generator | None = None, decoder: Codec | None = None) -> Tensor:
    """(N, K, 2) float64 decoded minus true keypoints (N, K, 2), input pixels (:func:`round_trip`)."""
    decoded = round_trip(codec, keypoints, target=target, decoder=decoder, generator=generator)[0]
    return decoded - keypoints.double()


def error_stats(errors: Tensor) -> dict[str, float]:
    """Statistics of errors (..., 2): per axis (x) ``mean``, ``mean |e|``, ``rms``, ``worst |e|``;
    of the Euclidean norm ``mean ||e|| (2-D)``, ``worst ||e|| (2-D)``."""
    ex = errors[..., 0].flatten().double()
    norm = errors.double().norm(dim=-1).flatten()
    return {"mean": ex.mean().item(), "mean |e|": ex.abs().mean().item(), "rms": ex.pow(2).mean().sqrt().item(),
            "worst |e|": ex.abs().max().item(), "mean ||e|| (2-D)": norm.mean().item(),
            "worst ||e|| (2-D)": norm.max().item()}


def vanilla_errors(keypoints: Tensor, input_size: int, stride: int) -> dict[str, Tensor]:
    """Round-trip errors (N, K, 2) float64 of vanilla heatmap regression's ``floor`` and ``round``
    encoders (one-hot targets, argmax) for keypoints (N, K, 2)."""
    return {q: round_trip_errors(build_codec(f"argmax-{q}", input_size, stride=stride, target="onehot"), keypoints)
            for q in ("floor", "round")}


def vanilla_table(keypoints: dict[int, Tensor], input_size: int) -> pd.DataFrame:
    """Closed form beside Monte Carlo for vanilla's encoders, from keypoints (N, 1, 2) per stride.

    Long table: ``stride, encoder, statistic`` (:func:`error_stats`), ``closed_form``,
    ``monte_carlo`` and ``|difference|``."""
    rows = [dict(stride=s, encoder=q, statistic=stat, closed_form=vanilla_closed_form(s)[q][stat], monte_carlo=v)
            for s, kp in keypoints.items() for q, e in vanilla_errors(kp, input_size, s).items()
            for stat, v in error_stats(e).items()]
    table = pd.DataFrame(rows)
    table["|difference|"] = (table.monte_carlo - table.closed_form).abs()
    return table


def vanilla_gaps(table: pd.DataFrame, points: dict[int, int]) -> pd.DataFrame:
    """Per stride of a :func:`vanilla_table`, the largest gap between Monte Carlo and closed form
    over the mean statistics (not the worst cases, which Monte Carlo approaches from below), beside
    6 standard errors of a mean, ``6 s / sqrt(12 n)`` for ``n = points[s]`` keypoints."""
    means = table[~table.statistic.str.startswith("worst")]
    standard_errors = pd.Series({s: 6 * s / math.sqrt(12 * n) for s, n in points.items()})
    return pd.DataFrame({"largest |MC - closed form| (px)": means.groupby("stride")["|difference|"].max(),
                         "6 standard errors (px)": standard_errors})


def randomized_by_fraction(input_size: int, stride: int, fractions: Tensor, draws: int,
                           generator: torch.Generator, cell: int = 20) -> pd.DataFrame:
    """Mean and variance of one randomized draw's x error at each fractional position.

    fractions (F,) in [0, 1) on the generator's device place a keypoint at ``cell + f`` heatmap
    units along x (on a cell centre along y); each is encoded ``draws`` times by H3R with one-hot
    targets and decoded by argmax. Columns ``f``, ``mean (MC)``, ``mean (closed form)`` (0),
    ``variance (MC)``, ``variance (closed form)`` (``s^2 f (1 - f)``), input pixels."""
    codec = H3R(input_size, input_size // stride, target="onehot", select="topk", k=1)
    u = torch.stack([cell + fractions, torch.full_like(fractions, cell)], -1)[:, None]  # (F, 1, 2)
    kp = ((u + 0.5) * stride - 0.5).repeat_interleave(draws, dim=0)  # centre-aligned input pixels
    e = round_trip_errors(codec, kp, generator=generator)[:, 0, 0].view(len(fractions), draws)
    f = fractions.cpu().numpy()
    return pd.DataFrame({"f": f, "mean (MC)": e.mean(1).cpu().numpy(), "mean (closed form)": 0.0,
                         "variance (MC)": e.var(1).cpu().numpy(), "variance (closed form)": stride**2 * f * (1 - f)})


def error_by_stride(points: dict[int, int], input_size: int, generator: torch.Generator) -> pd.DataFrame:
    """Mean Euclidean error against the stride, closed form and Monte Carlo, for floor, round, one
    randomized draw and the randomized expected target (H3R, top-4, normalised weights).

    points: stride -> how many uniform keypoints (:func:`uniform_keypoints`) to draw. Long table:
    ``stride, system, source`` (``Monte Carlo`` or ``closed form``), ``error`` (input pixels)."""
    rows = []
    for s, n in points.items():
        kp = uniform_keypoints(n, input_size, s, generator)
        h3r = H3R(input_size, input_size // s, target="onehot", select="topk", k=4, weighting="normalized")
        errors = {**vanilla_errors(kp, input_size, s),
                  "randomized, one draw": round_trip_errors(h3r, kp, generator=generator),
                  "randomized, expected target": round_trip_errors(h3r, kp, "expected")}
        closed = {"floor": CORNER_MEAN * s, "round": CORNER_MEAN / 2 * s,
                  "randomized, one draw": randomized_draw_norm(s), "randomized, expected target": 0.0}
        rows += [dict(stride=s, system=k, source="Monte Carlo", error=e.norm(dim=-1).mean().item())
                 for k, e in errors.items()]
        rows += [dict(stride=s, system=k, source="closed form", error=v) for k, v in closed.items()]
    return pd.DataFrame(rows)


def codec_error_table(points: dict[int, int], input_size: int, generator: torch.Generator) -> pd.DataFrame:
    """Each preset's target error on uniform keypoints: its own training target decoded, no network.

    points: stride -> how many keypoints to draw. H3R presets give two rows, one draw and the
    expected target. Columns ``codec, stride, mean, worst`` (Euclidean error, input pixels)."""
    rows = []
    for s, n in points.items():
        kp = uniform_keypoints(n, input_size, s, generator)
        for name in heatmap_presets():
            codec = build_codec(name, input_size, stride=s)
            kinds = ({"encode": f"{name} (one draw)", "expected": f"{name} (expected target)"}
                     if isinstance(codec, H3R) else {"encode": name})
            for kind, label in kinds.items():
                err = round_trip_errors(codec, kp, kind, generator).norm(dim=-1)
                rows.append(dict(codec=label, stride=s, mean=err.mean().item(), worst=err.max().item()))
    return pd.DataFrame(rows)


def landmark_sets(data_root, input_size: int, synthetic_faces: int, seed: int = 0) -> tuple[list[LandmarkSet], dict]:
    """The codec-only benchmark's landmarks: ``synthetic_faces`` rendered test faces first, then
    every face benchmark found under ``data_root`` (:func:`find_face_datasets`), and the missing
    ones (name -> what was looked for)."""
    from h3r.data.registry import build_dataset

    synthetic = build_dataset("synthetic_faces", "test", input_size=input_size, length=synthetic_faces, seed=seed)
    found, missing = find_face_datasets(data_root, input_size=input_size)
    return [landmark_set(synthetic), *(landmark_set(ds, name=f"{n}/{ds.split}") for n, ds in found.items())], missing


def describe_sets(sets: list[LandmarkSet], data_root, missing) -> str:
    """Markdown list of :func:`landmark_sets`' sets, the synthetic one first, and the benchmarks
    not found under ``data_root``."""
    synthetic, real = sets[0], sets[1:]
    lines = [f"* `{synthetic.name}`: {len(synthetic)} rendered faces of the embedded benchmark (exact landmarks; "
             "the crop is the image itself)"]
    lines += [f"* `{lm.name}` under `{data_root}`: {len(lm)} faces, annotations only (no image read)" for lm in real]
    lines.append(f"* not found under `{data_root}`: " + (", ".join(f"`{n}`" for n in missing) or "none"))
    return "\n".join(lines)


#: the round trips the flip test is measured on: floor, the randomized draws, the convention mismatch
FLIP_ROWS = ["argmax-floor", "h3r (one draw)", "h3r-official (one draw)", "h3r target, official decoder"]


def codec_nme_with_flips(sets: list[LandmarkSet], strides, **options) -> pd.DataFrame:
    """:func:`codec_nme_table` of every :data:`ROUND_TRIPS`, then of :data:`FLIP_ROWS` with the
    flip test (``options``: its ``cell_budget``, ``seed``, ``device``)."""
    flips = {k: ROUND_TRIPS[k] for k in FLIP_ROWS}
    return pd.concat([codec_nme_table(sets, strides, ROUND_TRIPS, **options),
                      codec_nme_table(sets, strides, flips, flip_test=True, **options)], ignore_index=True)


def flip_table(nme_table: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """NME (%) of :data:`FLIP_ROWS` on one dataset of a :func:`codec_nme_with_flips`, columns
    (stride, ``plain`` or ``flip test``)."""
    flips = nme_table[nme_table.codec.isin(FLIP_ROWS)].pivot_table(
        index=["dataset", "codec"], columns=["stride", "flip_test"], values="nme")
    return flips.rename(columns={False: "plain", True: "flip test"}, level=1).loc[dataset].loc[FLIP_ROWS]


def faces_per_stride(nme_table: pd.DataFrame, dataset: str) -> str:
    """How many faces of ``dataset`` each stride of a :func:`codec_nme_table` scored, in words."""
    counts = nme_table[nme_table.dataset == dataset].groupby("stride").samples.max()
    return ", ".join(f"{n} faces at stride {s}" for s, n in counts.items())


def nme_by_stride(nme_table: pd.DataFrame, dataset: str, codecs=ROUND_TRIPS) -> pd.DataFrame:
    """Codec x stride NME (%) of one dataset of a :func:`codec_nme_table`, without the flip test,
    rows in the order of ``codecs``, columns named ``stride s (WxH)``."""
    t = nme_table[(nme_table.dataset == dataset) & ~nme_table.flip_test]
    wide = t.pivot(index="codec", columns="stride", values="nme").loc[list(codecs)]
    heatmaps = t.groupby("stride").heatmap.first()
    wide.columns = [f"stride {s} ({heatmaps[s]})" for s in wide.columns]
    return wide


def decode_draws(codec: Codec, keypoints: Tensor, draws: int, target: str = "encode",
                 generator: torch.Generator | None = None) -> Tensor:
    """(draws, N, K, 2) float64: ``draws`` round trips of keypoints (N, K, 2), encoded as one batch."""
    decoded = round_trip(codec, keypoints.repeat(draws, 1, 1), target=target, generator=generator)[0]
    return decoded.view(draws, *keypoints.shape)


def sampling_noise(codec: Codec, keypoints: Tensor) -> float:
    """RMS Euclidean error of one randomized-rounding draw, ``s sqrt(E[f_x(1-f_x) + f_y(1-f_y)])``
    over keypoints (N, K, 2); the RMS error of the mean of ``T`` draws is this over ``sqrt(T)``."""
    frac = codec.to_heatmap(keypoints) % 1
    return codec.stride[0] * torch.sqrt((frac * (1 - frac)).sum(-1).mean()).item()


def mean_decode_convergence(codec: Codec, keypoints: Tensor, draws: list[int], generator: torch.Generator,
                            chunk: int = 256) -> pd.DataFrame:
    """How the mean of ``T`` randomized decodes approaches keypoints (N, K, 2), for each ``T`` in
    ``draws`` (increasing; the draws of a smaller ``T`` are reused), encoded ``chunk`` draws at a time.

    Columns ``draws``, ``rms_error`` and ``max_error`` (Euclidean error of the mean over keypoints,
    input pixels). Unbiased codecs have ``rms_error`` near :func:`sampling_noise` over ``sqrt(T)``."""
    total = torch.zeros_like(keypoints, dtype=torch.float64)
    done, rows = 0, []
    for t in draws:
        while done < t:
            n = min(chunk, t - done)
            total += decode_draws(codec, keypoints, n, generator=generator).sum(0)
            done += n
        error = (total / t - keypoints.double()).norm(dim=-1)
        rows.append(dict(draws=t, rms_error=error.pow(2).mean().sqrt().item(), max_error=error.max().item()))
    return pd.DataFrame(rows)


def lossless_table(codec: H3R, keypoints: Tensor, variants: list[tuple[str, dict]]) -> pd.DataFrame:
    """Error of decoding H3R's expected target for keypoints (N, K, 2) by each decoder variant.

    variants: ``(select, options)`` of :class:`~h3r.codecs.H3R`, e.g. ``("topk", {"k": 4})`` or
    ``("window", {"radius": 1})``, each with normalised and softmax weighting. Columns
    ``activation_points`` (``top-k`` or ``window WxW``), ``weighting``, ``mean_error``,
    ``max_error`` (Euclidean, input pixels)."""
    rows = []
    for select, options in variants:
        side = 2 * options.get("radius", 0) + 1
        label = f"top-{options['k']}" if select == "topk" else f"window {side}x{side}"
        for weighting in ("normalized", "softmax"):
            decoder = H3R(codec.input_size, codec.heatmap_size, select=select, weighting=weighting, **options)
            err = round_trip_errors(codec, keypoints, "expected", decoder=decoder).norm(dim=-1)
            rows.append(dict(activation_points=label, weighting=weighting, mean_error=err.mean().item(),
                             max_error=err.max().item()))
    return pd.DataFrame(rows)


def bias_table(decoded: dict[str, Tensor], keypoints: Tensor, fractions: Tensor) -> pd.DataFrame:
    """Long table of each round trip's x error along a sweep of fractional positions.

    decoded: name -> decoded keypoints (F, 1, 2); keypoints (F, 1, 2) the true ones, at the
    fractional positions ``fractions`` (F,). Columns ``codec, f, bias`` (input pixels)."""
    f = fractions.double().cpu().numpy()
    x = [(d.double() - keypoints.double())[:, 0, 0].cpu().numpy() for d in decoded.values()]
    return pd.DataFrame({"codec": np.repeat(list(decoded), len(f)), "f": np.tile(f, len(decoded)),
                         "bias": np.concatenate(x)})


def bias_summary(bias: pd.DataFrame) -> pd.DataFrame:
    """Per codec of a :func:`bias_table`: ``largest_abs_bias`` and ``mean_bias``, rounded to 4
    decimals (a float32 zero of either sign reads 0.0)."""
    by_codec = bias.assign(abs_bias=bias.bias.abs()).groupby("codec")
    summary = pd.DataFrame({"largest_abs_bias": by_codec.abs_bias.max(), "mean_bias": by_codec.bias.mean()})
    return summary.round(4) + 0.0


def preset_table(input_size: int, stride: int) -> pd.DataFrame:
    """The codec presets: class, options, alignment and heatmap size at ``stride``, by preset."""
    rows = []
    for name, p in ((name, PRESETS[name]) for name in heatmap_presets()):
        codec = build_codec(name, input_size, stride=stride)
        rows.append(dict(preset=name, cls=CODECS[p.codec].__name__,
                         options=", ".join(f"{k}={v!r}" for k, v in p.args.items()) or "-",
                         alignment=codec.align, heatmap=f"{codec.heatmap_size[0]}x{codec.heatmap_size[1]}"))
    return pd.DataFrame(rows).set_index("preset")


def gallery_targets(input_size: int, stride: int, generator: torch.Generator,
                    position: tuple[float, float] = (0.3, 0.7)) -> dict[str, tuple[Tensor, Tensor]]:
    """What each codec asks a network to predict for one keypoint at ``position`` (sub-cell, in
    heatmap units) from the centre cell ``n`` of the heatmap: title -> (target (Hh, Wh), the
    keypoint (2,) in that codec's heatmap units). Soft-argmax gets the Gaussian on the exact point
    its network learns; the randomized codecs one draw (from ``generator``) and the expectation."""
    def codec(name):
        return build_codec(name, input_size, stride=stride)

    n = codec("h3r").heatmap_size[0] // 2
    uv = torch.tensor([[[n + position[0], n + position[1]]]], device=generator.device)
    kp = codec("h3r").to_input(uv)
    panels = {name: (codec(name).encode(kp).heatmaps, codec(name).to_heatmap(kp))
              for name in ["argmax-floor", "argmax-round", "onehot-round", "dark", "udp"]}
    panels["soft-argmax (learned)"] = (codec("dark").encode(kp).heatmaps, uv)
    for name in ["gauss-random", "h3r"]:
        panels[f"{name}, one draw"] = (codec(name).encode(kp, generator=generator).heatmaps, uv)
        panels[f"{name}, expectation"] = (codec(name).expected_target(kp).heatmaps, uv)
    return {title: (target[0, 0], point.reshape(2)) for title, (target, point) in panels.items()}
