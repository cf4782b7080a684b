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

from dataclasses import dataclass, replace

import pandas as pd
import torch
from torch import Tensor

from h3r import metrics
from h3r.codecs import H3R, Codec, SoftArgmax, build_codec
from h3r.config import preset
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


#: the rows of the codec-only tables: every preset, H3R both ways, and our target read officially
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
#: the controls of the learned study: one-hot on the rounded cell, a Gaussian on a randomized cell
CONTROL_ROUND_TRIPS = {
    "onehot-round": RoundTrip("onehot-round"),
    "gauss-random (one draw)": RoundTrip("gauss-random"),
    "gauss-random (expected target)": RoundTrip("gauss-random", "expected"),
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
