"""Every dataset by name: ``build_dataset("wflw", "test", input_size=256)``.

Real datasets read ``<data_root>/<folder>/`` (see :mod:`h3r.data.annotated`); the synthetic benchmarks
(:mod:`h3r.data.synthetic`) are generated on the fly.
``LAYOUT_DOCS`` maps each real dataset to its expected folder tree and official sources, for the
book's "reproduce it yourself" chapter.
"""
from __future__ import annotations

from h3r.data.faces import AFLW, AFLW2000, COFW, WFLW, W300LP, Face300W, Face300WCSV, LaPa
from h3r.data.pose import MPII, COCOKeypoints
from h3r.data.annotated import AnnotatedDataset, DatasetDocs
from h3r.data.synthetic import SyntheticDataset, SyntheticFaces, SyntheticPose
from h3r.data.transforms import Augment

DATASETS: dict[str, type[AnnotatedDataset]] = {cls.name: cls for cls in (
    WFLW, Face300W, Face300WCSV, COFW, AFLW, LaPa, W300LP, AFLW2000, MPII, COCOKeypoints)}

SYNTHETIC: dict[str, type[SyntheticDataset]] = {cls.name: cls for cls in (SyntheticFaces, SyntheticPose)}

LAYOUT_DOCS: dict[str, DatasetDocs] = {name: cls.docs for name, cls in DATASETS.items()}


def available_datasets() -> list[str]:
    return [*DATASETS, *SYNTHETIC]


def dataset_class(name: str) -> type[AnnotatedDataset] | type[SyntheticDataset]:
    """The class of dataset ``name`` (its ``layout`` tells the keypoints without reading any file)."""
    if name in SYNTHETIC:
        return SYNTHETIC[name]
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    return DATASETS[name]


def build_dataset(name: str, split: str, data_root=None, input_size=None, augment: Augment | None = None,
                  **kwargs):
    """The dataset ``name`` (see :func:`available_datasets`) for ``split``.

    ``input_size`` (int or (width, height)) defaults to the dataset's own: 256 x 256 for faces and
    MPII, 192 x 256 for COCO. Real datasets take ``data_root``, ``augment`` and their own keyword
    arguments (``box``, ``normalizer``, ``protocol``, ``on_missing_image``, ``seed``, ...). Synthetic ones take
    ``length`` and ``seed``; they render their own variation, so ``augment`` must be None.
    """
    if input_size is not None:
        kwargs["input_size"] = input_size
    if name in SYNTHETIC:
        if augment is not None:
            raise ValueError(f"{name} renders its own variation; augment must be None")
        return SYNTHETIC[name](split=split, **kwargs)
    return dataset_class(name)(split, data_root=data_root, augment=augment, **kwargs)
