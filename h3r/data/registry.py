"""Every dataset by name: ``build_dataset("wflw", "test", input_size=256)``.

Real datasets read ``<data_root>/<folder>/`` (see :mod:`h3r.data.annotated`); the synthetic benchmarks
(:mod:`h3r.data.synthetic`) are generated on the fly.
``LAYOUT_DOCS`` maps each real dataset to its expected folder tree and official sources, for the
book's "reproduce it yourself" chapter.
"""
from __future__ import annotations

from h3r.data.faces import AFLW, AFLW2000, COFW, WFLW, W300LP, Face300W, Face300WCSV, LaPa
from h3r.data.pose import MPII, COCOKeypoints
from h3r.data.annotated import AnnotatedDataset, AnnotationError, DatasetDocs, DatasetNotFoundError
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


# --- what a machine has, and where it should go -----------------------------------------------------

def dataset_status(name: str, split: str, data_root=None) -> dict:
    """Whether ``split`` of dataset ``name`` builds under ``data_root``: ``{"status", "detail"}``
    with status ``"found"`` (detail: the sample count, and the images missing, which are counted
    here rather than fatal), ``"not found"`` (detail: the files looked for) or
    ``"annotation error"`` (detail: the error, with file and line)."""
    try:
        ds = build_dataset(name, split, data_root=data_root, on_missing_image="skip")
    except DatasetNotFoundError as err:
        looked = [str(path) for path in err.missing[:10]]
        more = [f"... and {len(err.missing) - 10} more"] if len(err.missing) > 10 else []
        return {"status": "not found", "detail": "looked for " + " ".join(" ".join(looked + more).split())}
    except (AnnotationError, ValueError) as err:
        return {"status": "annotation error", "detail": str(err)}
    s = ds.summary()
    missing = s.get("skipped_missing_image", 0)
    return {"status": "found", "detail": f"{s['samples']} samples" + (f", {missing} images missing" if missing else "")}


#: a heading of :func:`layouts_markdown` other than the dataset's own title
LAYOUT_LABELS = {"300w_csv": "HRNet CSV (300W in HRNet's files; `HRNetCSV(csv_file=..., layout=...)` for any layout)"}


def layouts_markdown(width: int = 84) -> str:
    """Markdown saying, for every real dataset, how to build it, its splits, the folder tree it is
    read from under the data root, where to obtain it and its notes (:data:`LAYOUT_DOCS`). A tree
    line wider than ``width`` has its comment moved to a line of its own, so the column fits the
    page."""
    blocks = []
    for name, docs in LAYOUT_DOCS.items():
        cls = DATASETS[name]
        tree = "\n".join(line if len(line) <= width else line.replace("  (", "\n      (", 1)
                         for line in docs.tree.strip("\n").splitlines())
        urls = "\n".join(f"* {u}" for u in docs.urls)
        splits = ", ".join(f"`{s}`" for s in cls.splits)
        blocks.append(f"**{LAYOUT_LABELS.get(name, docs.title)}** — `build_dataset({name!r}, split)`, splits "
                      f"{splits}; expected under `<data_root>/{cls.folder or cls.name}/`:\n\n```text\n{tree}\n```"
                      f"\n\nObtain it from:\n\n{urls}\n" + (f"\n{docs.notes.strip()}\n" if docs.notes else ""))
    return "\n\n".join(blocks)
