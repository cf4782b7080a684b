"""The face-alignment benchmarks of the paper, read from their official files, with their protocols.

Every dataset returns the sample dict of :mod:`h3r.data.sample` (see
:class:`h3r.data.annotated.AnnotatedDataset`) and takes ``box="P1"`` (the tight box of the
ground-truth landmarks, the paper's P1) or ``box="P2"`` (the dataset's own box, P2), and
``normalizer=`` one of:

``"inter_ocular"``  distance of the layout's ``normalizer_index`` (outer eye corners)
``"inter_pupil"``   distance of the centroids of the layout's ``pupil_index`` groups
``"box"``           sqrt(w * h) of the tight landmark box, ``w = x2 - x1`` as the official
                    ``examples/test_aflw2000.py`` computes it
``"box_size"``      a size given by the annotation (AFLW's ``box_size`` column)

each dataset defaulting to its protocol's. Coordinates follow :mod:`h3r.geometry` (pixel centres
at integers); where a format is MATLAB's 1-based, 1 is subtracted as the official H3R scripts do.
"""
from __future__ import annotations

from h3r._extras import require

require("data", "h3r.data (the datasets and their crops)")

import csv
import json
from pathlib import Path

import numpy as np
import scipy.io

from h3r.data.layouts import AFLW19, COFW29, IBUG68, LAPA106, WFLW98, Layout, normalizer_distances
from h3r.data.annotated import (AnnotatedDataset, Annotations, AnnotationError, DatasetDocs, DatasetNotFoundError,
                           as_array, find_image, parse_floats)
from h3r.data.transforms import box_from_keypoints, square_box, xywh_box

#: the ``normalizer=`` choices of a face dataset (see the module docstring)
FACE_NORMALIZERS = ("inter_ocular", "inter_pupil", "box", "box_size")


def face_normalizers(keypoints: np.ndarray, layout: Layout, kind: str) -> np.ndarray:
    """The per-sample normalising distance (N,) of ``kind`` (see the module docstring), computed by
    :func:`h3r.data.layouts.normalizer_distances`; invalid values (coinciding eye points) are kept and
    counted by the dataset, not raised."""
    boxes = box_from_keypoints(keypoints) if kind == "box" else None
    return normalizer_distances(layout, keypoints, boxes, rule=kind).numpy()


class FaceDataset(AnnotatedDataset):
    """A face dataset: adds the ``normalizer`` choice to :class:`AnnotatedDataset`.

    ``annotations_only=True`` builds the index (landmarks, boxes, normalisers, crop transform)
    without looking for the images, for analyses that never read a pixel (codec-only error,
    annotation statistics) on annotation files shipped without their images; reading an image
    file then raises (COFW keeps serving the images stored in its ``.mat`` files).
    """

    #: the normaliser the dataset's protocol divides by (a benchmark's ``normalizer`` in
    #: :data:`h3r.protocols.PROTOCOLS` states the same)
    default_normalizer = "inter_ocular"

    def __init__(self, split: str, data_root=None, input_size=256, augment=None, *,
                 normalizer: str | None = None, annotations_only: bool = False, **kwargs):
        self.normalizer = normalizer or self.default_normalizer
        if self.normalizer not in FACE_NORMALIZERS:
            raise ValueError(f"normalizer must be one of {FACE_NORMALIZERS}, got {self.normalizer!r}")
        self.annotations_only = annotations_only
        super().__init__(split, data_root, input_size, augment, **kwargs)

    def compute_normalizers(self, ann: Annotations) -> np.ndarray:
        return face_normalizers(ann.keypoints, self.layout, self.normalizer)

    def _drop_missing_images(self, ann: Annotations) -> Annotations:
        if not self.annotations_only:
            return super()._drop_missing_images(ann)
        self.counts["skipped_missing_image"] = 0
        return ann

    def read_image(self, index: int) -> np.ndarray:
        if self.annotations_only:
            raise RuntimeError(f"{self.name}/{self.split} was built with annotations_only=True and reads no "
                               f"image (sample {index}: {self.ann.images[index]}); build it without that option")
        return super().read_image(index)


# --- WFLW ----------------------------------------------------------------------------------------

class WFLW(FaceDataset):
    """WFLW (Wu et al., CVPR 2018): 98 landmarks, 7500 train / 2500 test faces.

    Each line of ``list_98pt_rect_attr_{split}.txt`` holds 196 coordinates (x0 y0 x1 y1 ...), the
    face rectangle ``x_min y_min x_max y_max`` (P2), six 0/1 attributes (pose, expression,
    illumination, make-up, occlusion, blur: the test subsets) and the image path under
    ``WFLW_images/``. Coordinates are used as given (the official ``examples/test_wflw.py`` does);
    NME is normalised by the outer eye corners 60 and 72.
    """

    name = "wflw"
    layout = WFLW98
    splits = ("train", "test")
    ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
    FIELDS = 196 + 4 + 6 + 1
    docs = DatasetDocs(
        title="WFLW: Wider Facial Landmarks in-the-Wild (98 points)",
        tree="""
wflw/
  WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_train.txt
  WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_test.txt
  WFLW_images/0--Parade/0_Parade_marchingband_1_116.jpg
  WFLW_images/...               (the 61 event folders of WFLW_images.tar.gz)
""",
        urls=("https://wywu.github.io/projects/LAB/WFLW.html (WFLW_images.tar.gz, WFLW_annotations.tar.gz)",),
    )

    def load(self) -> Annotations:
        lists = self.root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
        path = lists / f"list_98pt_rect_attr_{self.split}.txt"
        images = self.root / "WFLW_images"
        self.require(path, images)
        rows, names, sources = [], [], []
        for line_no, line in enumerate(path.read_text().splitlines(), start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != self.FIELDS:
                raise AnnotationError(path, line_no, f"expected {self.FIELDS} fields (196 coordinates, "
                                      f"4 box, 6 attributes, 1 image path), got {len(tokens)}")
            rows.append(parse_floats(tokens[:-1], path, line_no, "coordinates, box and attributes"))
            names.append(str(images / tokens[-1]))
            sources.append(f"{path}:{line_no}")
        if not rows:
            raise AnnotationError(path, None, "no annotation lines")
        values = np.stack(rows)
        attributes = values[:, 200:206]
        if not np.isin(attributes, (0, 1)).all():
            i = int(np.flatnonzero(~np.isin(attributes, (0, 1)).all(1))[0])
            raise AnnotationError(sources[i], None, f"attributes must be 0 or 1, got {attributes[i].tolist()}")
        return Annotations(
            images=names, sources=sources, keypoints=values[:, :196].reshape(-1, 98, 2), boxes=values[:, 196:200],
            subsets={name: attributes[:, i] > 0 for i, name in enumerate(self.ATTRIBUTES)})


# --- 300W ----------------------------------------------------------------------------------------

def read_pts(path: Path, num_points: int) -> np.ndarray:
    """An iBUG ``.pts`` file -> (num_points, 2) float64 as written (1-based)."""
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    expected = 3 + num_points + 1
    if len(lines) < 3 or not lines[0].strip().startswith("version"):
        raise AnnotationError(path, 1, "expected the header 'version: 1', 'n_points: N', '{'")
    head = lines[1].replace(":", " ").split()
    if len(head) != 2 or head[0] != "n_points" or not head[1].isdigit():
        raise AnnotationError(path, 2, f"expected 'n_points: {num_points}', got {lines[1]!r}")
    if int(head[1]) != num_points:
        raise AnnotationError(path, 2, f"expected {num_points} points, the file declares {head[1]}")
    if lines[2].strip() != "{":
        raise AnnotationError(path, 3, f"expected '{{', got {lines[2]!r}")
    if len(lines) != expected or lines[-1].strip() != "}":
        raise AnnotationError(path, len(lines), f"expected {num_points} lines 'x y' between '{{' and '}}' "
                              f"({expected} lines in all), got {len(lines)} lines")
    points = []
    for line_no in range(4, 4 + num_points):
        tokens = lines[line_no - 1].split()
        if len(tokens) != 2:
            raise AnnotationError(path, line_no, f"expected 2 fields 'x y', got {len(tokens)}")
        points.append(parse_floats(tokens, path, line_no, "point"))
    return np.stack(points)


class Face300W(FaceDataset):
    """300W (Sagonas et al., 2013) from the iBUG ``.pts`` files, 68 points.

    Splits: ``train`` = LFPW trainset + HELEN trainset + AFW (3148), ``common`` = LFPW testset +
    HELEN testset (554), ``challenging`` = iBUG (135), ``full`` = common + challenging (689, with
    ``common``/``challenging`` subset flags), ``test`` = the 300W private set (600, ``indoor`` /
    ``outdoor`` flags). As the official ``examples/test_300w.py``: landmarks are the ``.pts`` values
    minus 1 (MATLAB's 1-based pixels), NME is normalised by the outer eye corners 36 and 45, and
    the P2 box is the tight box of the *un-shifted* ``.pts`` values (the script builds it before
    subtracting 1, so it is P1 moved by +1 pixel; 300W ships no other box with the ``.pts``).
    """

    name = "300w"
    layout = IBUG68
    COMMON = ("lfpw/testset", "helen/testset")
    CHALLENGING = ("ibug",)
    PRIVATE = ("300W/01_Indoor", "300W/02_Outdoor")
    FOLDERS = {
        "train": ("lfpw/trainset", "helen/trainset", "afw"),
        "common": COMMON,
        "challenging": CHALLENGING,
        "full": COMMON + CHALLENGING,
        "test": PRIVATE,
    }
    splits = tuple(FOLDERS)
    docs = DatasetDocs(
        title="300W: 300 Faces in-the-Wild (68 points)",
        tree="""
300w/
  images/afw/*.jpg + *.pts
  images/helen/trainset/*.jpg + *.pts     images/helen/testset/*.jpg + *.pts
  images/lfpw/trainset/*.png + *.pts      images/lfpw/testset/*.png + *.pts
  images/ibug/*.jpg + *.pts
  images/300W/01_Indoor/*.png + *.pts     images/300W/02_Outdoor/*.png + *.pts   (test split only)
  face_landmarks_300w_{train,valid,valid_common,valid_challenge,test}.csv  (HRNet CSVs, '300w_csv')
""",
        urls=("https://ibug.doc.ic.ac.uk/resources/facial-point-annotations/ (afw, helen, lfpw, ibug zips)",
              "https://ibug.doc.ic.ac.uk/resources/300-W/ (the 300W private test set)",
              "https://github.com/HRNet/HRNet-Facial-Landmark-Detection (the CSV annotations, README 'Data')"),
    )

    def load(self) -> Annotations:
        folders = [self.root / "images" / f for f in self.FOLDERS[self.split]]
        self.require(*folders)
        files = [(f, p) for f, d in zip(self.FOLDERS[self.split], folders) for p in sorted(d.glob("*.pts"))]
        if not files:
            raise DatasetNotFoundError(self.name, [d / "*.pts" for d in folders], self.data_root, self.docs)
        raw = np.stack([read_pts(p, 68) for _, p in files])
        folder = np.array([f for f, _ in files])
        subsets = {}
        if self.split == "full":
            subsets = {"common": np.isin(folder, self.COMMON), "challenging": np.isin(folder, self.CHALLENGING)}
        elif self.split == "test":
            subsets = {"indoor": folder == self.PRIVATE[0], "outdoor": folder == self.PRIVATE[1]}
        return Annotations(
            images=[str(find_image(p.with_suffix(""))) for _, p in files], sources=[str(p) for _, p in files],
            keypoints=raw - 1, boxes=box_from_keypoints(raw), subsets=subsets)


# --- HRNet CSV (300W, AFLW, any layout) ---------------------------------------------------------

class HRNetCSV(FaceDataset):
    """A landmark CSV in the format of the HRNet facial-landmark code base, for any layout.

    Columns ``image_name, scale, [box_size,] center_w, center_h, original_0_x, original_0_y, ...``;
    the face box (P2) is the square of side ``200 * scale`` centred on ``(center_w, center_h)`` and
    coordinates are original pixels, used as given as HRNet does (``one_based=True`` subtracts 1).

    Generic use: ``HRNetCSV(csv_file=..., image_root=..., layout=...)``; subclasses bind the
    official file names to splits (``csv_template``).
    """

    name = "hrnet_csv"
    layout = IBUG68
    splits = ("custom",)
    csv_template = ""

    def __init__(self, split: str = "custom", data_root=None, input_size=256, augment=None, *,
                 csv_file=None, image_root=None, layout: Layout | None = None, one_based: bool = False, **kwargs):
        if layout is not None:
            self.layout = layout
        if kwargs.get("normalizer") is None and self.layout.normalizer == "box":
            kwargs["normalizer"] = "box_size"
        if csv_file is not None:
            self.splits = (split,)
        self.csv_file, self.image_root, self.one_based = csv_file, image_root, one_based
        super().__init__(split, data_root, input_size, augment, **kwargs)

    def csv_path(self, split: str) -> Path:
        if self.csv_file is not None:
            return Path(self.csv_file)
        return self.root / self.csv_template.format(split=split)

    def load(self) -> Annotations:
        path = self.csv_path(self.split)
        image_root = Path(self.image_root) if self.image_root is not None else self.root / "images"
        self.require(path)
        k = self.layout.num_keypoints
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        header = [h.strip() for h in rows[0]] if rows else []
        coords = [f"original_{i}_{a}" for i in range(k) for a in "xy"]
        lead = header[:len(header) - 2 * k]
        valid = lead[:2] == ["image_name", "scale"] and lead[-2:] == ["center_w", "center_h"]
        if not valid or header[len(lead):] != coords:
            raise AnnotationError(path, 1, f"expected the header image_name, scale, [box_size,] center_w, "
                                  f"center_h, original_0_x ... original_{k - 1}_y ({2 * k} coordinates for "
                                  f"layout {self.layout.name}), got {len(header)} columns starting {header[:5]}")
        names, values, sources = [], [], []
        for line_no, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise AnnotationError(path, line_no, f"expected {len(header)} fields, got {len(row)}")
            names.append(str(image_root / row[0]))
            values.append(parse_floats(row[1:], path, line_no, "numeric columns"))
            sources.append(f"{path}:{line_no}")
        if not values:
            raise AnnotationError(path, None, "no annotation rows")
        values = np.stack(values)
        column = {name: values[:, i] for i, name in enumerate(lead[1:])}
        keypoints = values[:, len(lead) - 1:].reshape(-1, k, 2) - (1 if self.one_based else 0)
        boxes = square_box(column["center_w"], column["center_h"], 200 * column["scale"])
        normalizers = None
        if self.normalizer == "box_size":
            if "box_size" not in column:
                raise AnnotationError(path, 1, "normalizer='box_size' needs a box_size column")
            normalizers = column["box_size"]
        return Annotations(images=names, sources=sources, keypoints=keypoints, boxes=boxes,
                           normalizers=normalizers)


class Face300WCSV(HRNetCSV):
    """300W in HRNet's CSV files: ``train`` (3148), ``valid`` (689 = ``valid_common`` 554 +
    ``valid_challenge`` 135), ``test`` (the 600 private faces). Normaliser: outer eye corners."""

    name = "300w_csv"
    folder = "300w"
    splits = ("train", "valid", "valid_common", "valid_challenge", "test")
    csv_template = "face_landmarks_300w_{split}.csv"
    docs = Face300W.docs


class AFLW(HRNetCSV):
    """AFLW with the 19-point protocol of Zhu et al. (CVPR 2016) as HRNet distributes it.

    Splits ``train`` (20000), ``test`` (AFLW-Full, 4386) and ``test_frontal`` (AFLW-Frontal, 1314);
    on ``test`` a ``frontal`` subset flag marks the faces that ``face_landmarks_aflw_test_frontal.csv``
    also lists (when that file is present). NME is normalised by the CSV's ``box_size`` column, the
    side of the square face box (``200 * scale`` in HRNet's files, so sqrt(w * h) of that box), as
    HRNet's ``compute_nme`` and mmpose's AFLW evaluation do.
    """

    name = "aflw"
    layout = AFLW19
    splits = ("train", "test", "test_frontal")
    default_normalizer = "box_size"
    csv_template = "face_landmarks_aflw_{split}.csv"
    docs = DatasetDocs(
        title="AFLW, 19-point protocol (AFLW-Full / AFLW-Frontal)",
        tree="""
aflw/
  face_landmarks_aflw_train.csv
  face_landmarks_aflw_test.csv
  face_landmarks_aflw_test_frontal.csv
  images/flickr/0/image00002.jpg, images/flickr/2/..., images/flickr/3/...   (AFLW's own tree)
""",
        urls=("https://www.tugraz.at/institute/icg/research/team-bischof/lrs/downloads/aflw/ (images)",
              "https://github.com/HRNet/HRNet-Facial-Landmark-Detection (the CSV annotations, README 'Data')"),
    )

    def load(self) -> Annotations:
        ann = super().load()
        frontal = self.csv_path("test_frontal")
        if self.split == "test" and frontal.is_file():
            with open(frontal, newline="") as f:
                keys = {(r[0], r[3], r[4]) for r in list(csv.reader(f))[1:] if r}
            with open(self.csv_path("test"), newline="") as f:
                rows = [r for r in list(csv.reader(f))[1:] if r]
            ann.subsets["frontal"] = np.array([(r[0], r[3], r[4]) in keys for r in rows])
        return ann


# --- COFW ----------------------------------------------------------------------------------------

def read_mat(path: Path, keys: tuple[str, ...]) -> dict:
    """MATLAB variables ``keys`` of a v5/v7 file (scipy) or a v7.3 HDF5 file (h5py), numpy-ordered.

    Cell arrays come back as lists of arrays; numeric arrays with MATLAB's (row, column) order.
    """
    major, _ = scipy.io.matlab.matfile_version(str(path))
    if major < 2:
        mat = scipy.io.loadmat(str(path), variable_names=keys)
        out = {}
        for key in keys:
            if key not in mat:
                raise AnnotationError(path, f"variable {key!r}", f"missing; the file must hold {', '.join(keys)}")
            value = mat[key]
            out[key] = list(value.ravel()) if value.dtype == object else value
        return out
    try:
        import h5py
    except ImportError:
        raise ImportError(f"{path} is a MATLAB v7.3 (HDF5) file: reading it needs h5py (pip install h5py), or "
                          f"re-save it as v7 in MATLAB/Octave (save(name, '-v7')) for scipy.io.loadmat") from None
    out = {}
    with h5py.File(path, "r") as f:
        for key in keys:
            if key not in f:
                raise AnnotationError(path, f"variable {key!r}", f"missing; the file must hold {', '.join(keys)}")
            value = f[key][()]
            # HDF5 stores MATLAB arrays transposed; cells are arrays of object references.
            if value.dtype == object or h5py.check_ref_dtype(value.dtype) is not None:
                out[key] = [np.asarray(f[ref][()]).T for ref in value.ravel()]
            else:
                out[key] = value.T
    return out


class COFW(FaceDataset):
    """COFW (Burgos-Artizzu et al., ICCV 2013), colour version: 29 points, 1345 train / 507 test.

    Read from ``COFW_{train,test}_color.mat``: images ``IsTr``/``IsT`` (a cell of uint8 arrays, grey
    ones are repeated to RGB), ``phisTr``/``phisT`` (N, 87) = x(29), y(29), occlusion(29), and
    ``bboxesTr``/``bboxesT`` (N, 4) = x, y, w, h (P2). The official files are MATLAB v7.3 (HDF5,
    needs h5py); v5/v7 re-saves are read with scipy. Coordinates are used as stored, as HRNet and
    mmpose do. Every point is annotated (``visible`` = 1); the occlusion flags are returned as
    ``occluded`` (K,). NME is normalised by points 8 and 9 (outer eye corners) as HRNet's
    ``compute_nme`` does; ``normalizer="inter_pupil"`` uses the pupils 16 and 17.
    """

    name = "cofw"
    layout = COFW29
    splits = ("train", "test")
    FILES = {"train": ("COFW_train_color.mat", "IsTr", "phisTr", "bboxesTr"),
             "test": ("COFW_test_color.mat", "IsT", "phisT", "bboxesT")}
    docs = DatasetDocs(
        title="COFW: Caltech Occluded Faces in the Wild (29 points, colour version)",
        tree="""
cofw/
  COFW_train_color.mat
  COFW_test_color.mat
""",
        urls=("http://www.vision.caltech.edu/xpburgos/ICCV13/ (COFW color: COFW_color.zip)",
              "https://data.caltech.edu/ (search 'COFW'; the Caltech data repository mirror)"),
    )

    def load(self) -> Annotations:
        file, image_key, phis_key, box_key = self.FILES[self.split]
        path = self.root / file
        self.require(path)
        mat = read_mat(path, (image_key, phis_key, box_key))
        images, phis, boxes = mat[image_key], np.asarray(mat[phis_key], dtype=np.float64), mat[box_key]
        n = len(images)
        if not isinstance(images, list):
            raise AnnotationError(path, f"variable {image_key!r}", "expected a cell array of images")
        if phis.shape != (n, 87):
            raise AnnotationError(path, f"variable {phis_key!r}", f"expected shape ({n}, 87): x(29), y(29), "
                                  f"occlusion(29) for each of the {n} images, got {phis.shape}")
        if np.shape(boxes) != (n, 4):
            raise AnnotationError(path, f"variable {box_key!r}",
                                  f"expected shape ({n}, 4) x, y, w, h, got {np.shape(boxes)}")
        self._images = images
        return Annotations(
            images=list(range(n)), sources=[f"{path} ({image_key}[{i}])" for i in range(n)],
            keypoints=np.stack([phis[:, :29], phis[:, 29:58]], axis=-1), boxes=xywh_box(boxes),
            per_keypoint={"occluded": (phis[:, 58:87] > 0).astype(np.float32)})

    def read_image(self, index: int) -> np.ndarray:
        image = np.asarray(self._images[self.ann.images[index]])
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise AnnotationError(self.ann.sources[index], None,
                                  f"expected a uint8 grey or RGB image, got {image.dtype} {image.shape}")
        return np.ascontiguousarray(image)


# --- LaPa ----------------------------------------------------------------------------------------

def read_count_file(path: Path, num_points: int) -> np.ndarray:
    """A LaPa landmark file: the count on line 1, then ``x y`` lines -> (num_points, 2)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0].strip() != str(num_points):
        got = repr(lines[0].strip()) if lines else "an empty file"
        raise AnnotationError(path, 1, f"expected the point count {num_points} on the first line, got {got}")
    if len(lines) != num_points + 1:
        raise AnnotationError(path, len(lines),
                              f"expected {num_points} lines 'x y' after the count, got {len(lines) - 1}")
    points = []
    for line_no, line in enumerate(lines[1:], start=2):
        tokens = line.split()
        if len(tokens) != 2:
            raise AnnotationError(path, line_no, f"expected 2 fields 'x y', got {len(tokens)}")
        points.append(parse_floats(tokens, path, line_no, "point"))
    return np.stack(points)


def read_box_file(path: Path) -> np.ndarray:
    """A box file: ``x1 y1 x2 y2 [score]`` on the first line -> (4,)."""
    tokens = path.read_text().split("\n", 1)[0].split()
    if len(tokens) not in (4, 5):
        raise AnnotationError(path, 1, f"expected 'x1 y1 x2 y2' (and an optional score), "
                              f"got {len(tokens)} fields")
    return parse_floats(tokens[:4], path, 1, "box")


class LaPa(FaceDataset):
    """LaPa (Liu et al., AAAI 2020): 106 points, 18176 train / 2000 val / 2000 test.

    ``{split}/landmarks/<name>.txt`` holds the count (106) then 106 lines ``x y``, used as given
    (as the official ``examples/test_lapa.py``); images are ``{split}/images/<name>.jpg``. NME is
    normalised by the outer eye corners 66 and 79 as the official script does
    (``normalizer="inter_pupil"``: its commented-out variant, the pupils 104 and 105). LaPa ships
    no face boxes: the official script reads detector boxes from ``{split}/bbox/<name>.txt``
    (``x1 y1 x2 y2``), which ``box="P2"`` requires and which are not part of the LaPa release.
    """

    name = "lapa"
    layout = LAPA106
    splits = ("train", "val", "test")
    docs = DatasetDocs(
        title="LaPa: Landmark guided face Parsing (106 points)",
        tree="""
lapa/
  train/images/<name>.jpg   train/landmarks/<name>.txt   (train/labels/<name>.png, unused)
  val/images/...            val/landmarks/...
  test/images/...           test/landmarks/...
  test/bbox/<name>.txt      (only for box='P2': 'x1 y1 x2 y2' detector boxes, not in the release)
""",
        urls=("https://github.com/JDAI-CV/lapa-dataset",),
    )

    def load(self) -> Annotations:
        split = self.root / self.split
        self.require(split / "landmarks", split / "images")
        files = sorted((split / "landmarks").glob("*.txt"))
        if not files:
            raise DatasetNotFoundError(self.name, [split / "landmarks" / "*.txt"], self.data_root, self.docs)
        boxes = None
        if self.box == "P2":
            box_files = [split / "bbox" / p.name for p in files]
            self.require(*box_files)
            boxes = np.stack([read_box_file(p) for p in box_files])
        return Annotations(
            images=[str(find_image(split / "images" / p.stem)) for p in files], sources=[str(p) for p in files],
            keypoints=np.stack([read_count_file(p, 106) for p in files]), boxes=boxes)


# --- 300W-LP and AFLW2000-3D --------------------------------------------------------------------

def read_pose_mat(path: Path, landmark_key: str) -> tuple[np.ndarray, float]:
    """``(landmarks (68, 2) minus 1, |yaw| in degrees or NaN)`` from a 3DDFA ``.mat`` file."""
    try:
        mat = scipy.io.loadmat(str(path), variable_names=(landmark_key, "Pose_Para"))
    except Exception as error:  # scipy raises several types for a corrupt file
        raise AnnotationError(path, None, f"not a readable MATLAB file ({error})") from None
    if landmark_key not in mat:
        raise AnnotationError(path, f"variable {landmark_key!r}", "missing")
    points = np.asarray(mat[landmark_key], dtype=np.float64)
    if points.ndim != 2 or points.shape[0] < 2 or points.shape[1] != 68:
        raise AnnotationError(path, f"variable {landmark_key!r}",
                              f"expected shape (2 or 3, 68), got {points.shape}")
    pose = np.asarray(mat.get("Pose_Para", np.full((1, 7), np.nan)), dtype=np.float64).ravel()
    yaw = abs(np.degrees(pose[1])) if pose.size >= 2 else np.nan
    return points[:2].T - 1, yaw


class W300LP(FaceDataset):
    """300W-LP (Zhu et al., CVPR 2016), the 68-point training set of the AFLW2000-3D benchmark.

    Every ``<folder>/<name>.mat`` holds ``pt2d`` (2, 68), minus 1 here as the official
    ``examples/test_aflw2000.py`` does for its landmarks; the ``*_Flip`` folders are the mirrored
    copies (``include_flipped=False`` leaves them out). P2 is the tight landmark box, as the
    official AFLW2000-3D script uses; NME is normalised by sqrt(w * h) of that box.
    """

    name = "300w_lp"
    layout = IBUG68
    splits = ("train",)
    default_normalizer = "box"
    FOLDERS = ("AFW", "HELEN", "IBUG", "LFPW")
    docs = DatasetDocs(
        title="300W-LP: 300W across Large Poses (68 points, training set)",
        tree="""
300w_lp/                          (the contents of 300W-LP.zip's 300W_LP/ folder)
  AFW/AFW_134212_1_0.jpg + .mat    AFW_Flip/...
  HELEN/...  HELEN_Flip/...  IBUG/...  IBUG_Flip/...  LFPW/...  LFPW_Flip/...
""",
        urls=("http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/main.htm (300W-LP.zip)",),
    )

    def __init__(self, split: str = "train", data_root=None, input_size=256, augment=None, *,
                 include_flipped: bool = True, **kwargs):
        self.include_flipped = include_flipped
        super().__init__(split, data_root, input_size, augment, **kwargs)

    def load(self) -> Annotations:
        folders = [self.root / f for f in self.FOLDERS]
        folders += [self.root / f"{f}_Flip" for f in self.FOLDERS] if self.include_flipped else []
        self.require(*folders)
        files = [p for d in folders for p in sorted(d.glob("*.mat"))]
        if not files:
            raise DatasetNotFoundError(self.name, [d / "*.mat" for d in folders], self.data_root, self.docs)
        points, yaw = zip(*(read_pose_mat(p, "pt2d") for p in files))
        keypoints = np.stack(points)
        return Annotations(
            images=[str(p.with_suffix(".jpg")) for p in files], sources=[str(p) for p in files],
            keypoints=keypoints, boxes=box_from_keypoints(keypoints),
            meta={"yaw": np.array(yaw, dtype=np.float32)})


class AFLW2000(FaceDataset):
    """AFLW2000-3D (Zhu et al., CVPR 2016): 2000 test faces with 68 3D-fitted landmarks.

    As the official ``examples/test_aflw2000.py``: landmarks are the first two rows of ``pt3d_68``
    minus 1, the box (P1 and P2 alike) is their tight box, and NME is normalised by sqrt(w * h) of
    that box. ``subsets`` bins the absolute yaw of ``Pose_Para`` (radians) into ``yaw_0_30``,
    ``yaw_30_60`` and ``yaw_60_90`` degrees (bins closed on the right; the few faces beyond 90
    degrees go to the last bin, as the 1306/462/232 split of the 3DDFA protocol implies, and are
    counted in ``summary()``).
    """

    name = "aflw2000"
    layout = IBUG68
    splits = ("test",)
    default_normalizer = "box"
    YAW_BINS = (("yaw_0_30", 0, 30), ("yaw_30_60", 30, 60), ("yaw_60_90", 60, np.inf))
    docs = DatasetDocs(
        title="AFLW2000-3D (68 points, test set)",
        tree="""
aflw2000/                        (the contents of AFLW2000-3D.zip's AFLW2000/ folder)
  image00002.jpg + image00002.mat
  ...
""",
        urls=("http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/main.htm (AFLW2000-3D.zip)",),
    )

    def __init__(self, split: str = "test", data_root=None, input_size=256, augment=None, **kwargs):
        super().__init__(split, data_root, input_size, augment, **kwargs)

    def load(self) -> Annotations:
        self.require(self.root)
        files = sorted(self.root.glob("*.mat"))
        if not files:
            raise DatasetNotFoundError(self.name, [self.root / "image*.mat"], self.data_root, self.docs)
        points, yaw = zip(*(read_pose_mat(p, "pt3d_68") for p in files))
        keypoints, yaw = np.stack(points), np.array(yaw)
        subsets = {name: (yaw > lo) & (yaw <= hi) if lo else yaw <= hi for name, lo, hi in self.YAW_BINS}
        return Annotations(
            images=[str(p.with_suffix(".jpg")) for p in files], sources=[str(p) for p in files],
            keypoints=keypoints, boxes=box_from_keypoints(keypoints), subsets=subsets,
            meta={"yaw": yaw.astype(np.float32)},
            counts={"yaw_beyond_90": int((yaw > 90).sum()), "no_pose": int(np.isnan(yaw).sum())})


# --- COCO-style JSON (any layout) ---------------------------------------------------------------

class COCOStyleFaces(FaceDataset):
    """Faces in COCO-style JSON (``images``; ``annotations`` with ``keypoints`` as x, y, v triples
    and ``bbox`` x, y, w, h), as mmpose converts the face benchmarks; for any layout.

    ``visible`` is v > 0; P2 is ``bbox``; ``normalizer="box_size"`` reads an annotation's
    ``box_size`` (mmpose's AFLW) or else sqrt(w * h) of ``bbox``.
    """

    name = "coco_style"
    layout = IBUG68
    splits = ("custom",)

    def __init__(self, ann_file, image_root, layout: Layout, split: str = "custom", input_size=256,
                 augment=None, **kwargs):
        self.ann_file, self.image_root = Path(ann_file), Path(image_root)
        self.layout, self.splits = layout, (split,)
        kwargs.setdefault("normalizer", "box_size" if layout.normalizer == "box" else None)
        super().__init__(split, None, input_size, augment, **kwargs)

    def load(self) -> Annotations:
        self.require(self.ann_file)
        data = json.loads(self.ann_file.read_text())
        for key in ("images", "annotations"):
            if key not in data:
                raise AnnotationError(self.ann_file, f"key {key!r}",
                                      "missing; expected COCO-style 'images' and 'annotations'")
        files = {im["id"]: im["file_name"] for im in data["images"]}
        k = self.layout.num_keypoints
        names, sources, triples, boxes, sizes = [], [], [], [], []
        for i, a in enumerate(data["annotations"]):
            where = f"annotations[{i}]"
            missing = [key for key in ("image_id", "keypoints", "bbox") if key not in a]
            if missing:
                raise AnnotationError(self.ann_file, where, f"missing key(s) {missing}")
            keypoints = as_array(a["keypoints"], (3 * k,), self.ann_file, where, f"keypoints (x, y, v for {k} points)")
            box = as_array(a["bbox"], (4,), self.ann_file, where, "bbox")
            if a["image_id"] not in files:
                raise AnnotationError(self.ann_file, where, f"image_id {a['image_id']} is not in 'images'")
            names.append(str(self.image_root / files[a["image_id"]]))
            sources.append(f"{self.ann_file} ({where})")
            triples.append(keypoints.reshape(k, 3))
            boxes.append(box)
            sizes.append(a.get("box_size", np.sqrt(box[2] * box[3])))
        triples = np.stack(triples)
        return Annotations(
            images=names, sources=sources, keypoints=triples[..., :2], visible=triples[..., 2] > 0,
            boxes=xywh_box(np.stack(boxes)),
            normalizers=np.array(sizes, dtype=np.float64) if self.normalizer == "box_size" else None)
