"""Heatmap codecs: keypoints -> training target (encode), heatmaps -> keypoints (decode).

See :mod:`h3r.codecs.base` for the interface and :mod:`h3r.geometry` for the coordinates.
``build_codec("dark", 256, stride=4)`` builds a codec from one of the presets
(:data:`h3r.config.PRESETS`: the names the book uses, each with its facts), or from a class name
in :data:`CODECS`. A codec is one file of this folder: its class, decorated with
:func:`~h3r.codecs.base.register_codec` and its presets, which every module of this folder is
imported for; a codec of your own registers the same way when its module is imported.
"""
from __future__ import annotations

import importlib
import pkgutil

from h3r.codecs.base import CODECS, Codec, Target, register_codec
from h3r.codecs.dark import DARK
from h3r.codecs.h3r import H3R, randomized_cells, rounding_neighbours
from h3r.codecs.integral import SoftArgmax
from h3r.codecs.local import LocalSoftArgmax
from h3r.codecs.quarter import ArgmaxQuarter
from h3r.codecs.rle import RLE
from h3r.codecs.simcc import SimCC, simcc_bins
from h3r.codecs.udp import UDP
from h3r.codecs.vanilla import Vanilla
from h3r.config import PRESETS

#: h3r's codec files in the book's order (a family together); a codec file not named here comes
#: after them. h3r.config reads this to order PRESETS, so it stays a literal tuple.
BOOK_ORDER = ("vanilla", "quarter", "dark", "udp", "local", "integral", "h3r", "simcc", "rle")

for _module in pkgutil.iter_modules(__path__):  # a codec file this package does not import above
    importlib.import_module(f"{__name__}.{_module.name}")

DEFAULT_STRIDE = 4


def build_codec(name: str, input_size, stride: int | None = None, heatmap_size=None, **overrides) -> Codec:
    """A codec by preset (or class) name for ``input_size`` ``(width, height)`` (or an int).

    Give either ``stride`` (the input must be a multiple of it) or ``heatmap_size``; with neither
    the stride is 4. ``overrides`` replace the preset's keyword arguments (e.g. ``sigma=1.5``).
    """
    if name in PRESETS:
        cls, kwargs = CODECS[PRESETS[name].codec], PRESETS[name].args
    elif name in CODECS:
        cls, kwargs = CODECS[name], {}
    else:
        raise ValueError(f"unknown codec {name!r}; presets: {sorted(PRESETS)}, classes: {sorted(CODECS)}")
    w, h = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if heatmap_size is None:
        stride = DEFAULT_STRIDE if stride is None else stride
        if not (isinstance(stride, int) and stride > 0):
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        if w % stride or h % stride:
            raise ValueError(f"input size {w}x{h} is not a multiple of the stride {stride}; "
                             f"crop or resize to a multiple of {stride}, or pass heatmap_size")
        heatmap_size = (w // stride, h // stride)
    elif stride is not None:
        hw, hh = (heatmap_size, heatmap_size) if isinstance(heatmap_size, int) else tuple(heatmap_size)
        if (hw * stride, hh * stride) != (w, h):
            raise ValueError(f"heatmap_size {heatmap_size} times stride {stride} is not the input size "
                             f"{(w, h)}; give only one of them")
    return cls((w, h), heatmap_size, **{**kwargs, **overrides})


__all__ = ["Codec", "Target", "Vanilla", "ArgmaxQuarter", "DARK", "UDP", "SoftArgmax", "H3R", "SimCC",
           "LocalSoftArgmax", "RLE", "randomized_cells", "rounding_neighbours", "simcc_bins", "CODECS", "build_codec",
           "register_codec"]
