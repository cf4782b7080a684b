"""Heatmap codecs: keypoints -> training target (encode), heatmaps -> keypoints (decode).

See :mod:`h3r.codecs.base` for the interface and :mod:`h3r.geometry` for the coordinates.
"""
from h3r.codecs.base import Codec, Target
from h3r.codecs.vanilla import Vanilla

__all__ = ["Codec", "Target", "Vanilla"]
