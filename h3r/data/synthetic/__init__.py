"""The embedded procedural benchmark: faces and figures with exact sub-pixel ground truth.

``base``    :class:`SyntheticDataset`: splits, random streams, the sample dict, the one render
            pipeline and the render cache
``canvas``  shapes in pixels and the exactly anti-aliased :class:`Canvas`
``scene``   what surrounds a subject: difficulty per split, backdrop, clutter, occluders, camera
``faces``   :class:`SyntheticFaces`, a parametric face with the 68 iBUG landmarks
``pose``    :class:`SyntheticPose`, an articulated figure with the 16 MPII joints
"""
from h3r._extras import require

require("data", "h3r.data.synthetic (the embedded benchmark)")

from h3r.data.synthetic.base import SPLITS, Scene, SyntheticDataset
from h3r.data.synthetic.faces import SyntheticFaces
from h3r.data.synthetic.pose import SyntheticPose
from h3r.data.synthetic.scene import DIFFICULTY, HARD, NORMAL, Nuisance

__all__ = ["SPLITS", "DIFFICULTY", "HARD", "NORMAL", "Nuisance", "Scene", "SyntheticDataset", "SyntheticFaces",
           "SyntheticPose"]
