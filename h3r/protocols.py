"""Benchmark protocols: how each benchmark is trained and reported, in one place.

:data:`PROTOCOLS` states, for every benchmark, its training and test splits, its normaliser, its
metric, its default input size and whether the official H3R test scripts define a protocol for
it (and on which split). The codec-only target errors (:mod:`h3r.analysis`) take their test splits
from it, the official evaluation (:mod:`h3r.evaluation`) its splits, and the benchmark chapter its
tables.

The official H3R test protocol (``examples/test_*.py`` of baoshengyu/H3R through
``torchalign/api.py``) cuts faces its own way; that crop is geometry of the data
(:class:`h3r.data.transforms.OfficialCrop`), and its decoder belongs to the model
(:mod:`h3r.models.official`).
"""
from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class Protocol:
    """How one benchmark is trained and reported.

    dataset:        the name in :mod:`h3r.data.registry`
    train_split:    the split trained on (of ``train_dataset`` when given)
    test_splits:    the reported test sets; the first is the default
    metric:         ``"nme"`` (NME, FR@0.1, AUC@0.1), ``"pckh"`` (PCKh@0.5) or ``"ap"`` (COCO AP)
    normalizer:     the distance NMEs and PCKh are divided by (one of
                    :data:`h3r.data.layouts.LAYOUT_NORMALIZERS`, or ``"box_size"``: a size the
                    annotation gives), or ``"oks"`` for COCO's object keypoint similarity
    input_size:     the default ``(width, height)`` of the crop
    official_split: the split the official H3R test script reads; None where it has none
    train_dataset:  the dataset trained on, when it is another one (AFLW2000-3D: 300W-LP)
    """

    dataset: str
    train_split: str
    test_splits: tuple[str, ...]
    metric: str
    normalizer: str
    input_size: tuple[int, int] = (256, 256)
    official_split: str | None = None
    train_dataset: str | None = None

    @property
    def test_split(self) -> str:
        return self.test_splits[0]


PROTOCOLS: dict[str, Protocol] = {p.dataset: p for p in (
    Protocol("wflw", "train", ("test",), "nme", "inter_ocular", official_split="test"),
    # 300W: "full" is common + challenging (689 faces); the official list (data/F300W/test.txt) was not published
    Protocol("300w", "train", ("full", "common", "challenging"), "nme", "inter_ocular", official_split="full"),
    Protocol("300w_csv", "train", ("valid", "valid_common", "valid_challenge"), "nme", "inter_ocular"),
    Protocol("cofw", "train", ("test",), "nme", "inter_ocular"),
    Protocol("aflw", "train", ("test", "test_frontal"), "nme", "box_size"),
    Protocol("lapa", "train", ("test",), "nme", "inter_ocular", official_split="test"),
    Protocol("aflw2000", "train", ("test",), "nme", "box", official_split="test", train_dataset="300w_lp"),
    Protocol("mpii", "train", ("valid",), "pckh", "head"),
    Protocol("coco", "train", ("val",), "ap", "oks", input_size=(192, 256)),
    Protocol("synthetic_faces", "train", ("test", "test_hard"), "nme", "inter_ocular", input_size=(128, 128)),
    Protocol("synthetic_pose", "train", ("test", "test_hard"), "pckh", "head", input_size=(128, 128)),
)}


def face_benchmarks(real_only: bool = True) -> list[str]:
    """The benchmarks scored by NME (faces), real ones only by default."""
    return [name for name, p in PROTOCOLS.items()
            if p.metric == "nme" and not (real_only and name.startswith("synthetic"))]


def official_benchmarks() -> dict[str, str]:
    """Benchmark -> the split its official H3R test script evaluates."""
    return {name: p.official_split for name, p in PROTOCOLS.items() if p.official_split is not None}


def protocol(dataset: str) -> Protocol:
    if dataset not in PROTOCOLS:
        raise ValueError(f"no protocol for {dataset!r}; the benchmarks are {sorted(PROTOCOLS)}")
    return PROTOCOLS[dataset]
