"""What ``mmpose.models`` needs to import for the peer checks, and no more.

mmcv-lite ships mmcv's Python code without its compiled extension (``mmcv._ext``), and
``mmpose.models`` imports three compiled ops at import time for heads and necks no peer check
builds (``MultiScaleDeformableAttention`` for EDPose, ``DeformConv2d`` and ``ModulatedDeformConv2d``
for DEKR and PoseWarper). Where ``mmcv.ops`` cannot be imported, :func:`stub_mmcv_ops` puts a
module in its place whose ops raise when called: nothing the peer checks compare runs through
them, and a check that did would fail, not pass."""
from __future__ import annotations

import sys
import types

COMPILED_OPS = ("MultiScaleDeformableAttention", "DeformConv2d", "ModulatedDeformConv2d")


def _unavailable(name: str) -> type:
    def refuse(*args, **kwargs):
        raise RuntimeError(f"mmcv.ops.{name} is a compiled op, absent from mmcv-lite: this stub only lets "
                           "mmpose.models import (tests/peer_stubs.py)")

    return type(name, (), {"__init__": refuse, "__doc__": f"stands in for the compiled mmcv.ops.{name}"})


def stub_mmcv_ops() -> bool:
    """Put the stub in place of ``mmcv.ops`` where mmcv is installed without its compiled ops;
    return whether it did."""
    try:
        import mmcv.ops  # noqa: F401
        return False
    except ModuleNotFoundError as error:
        if "mmcv" not in str(error) or "mmcv" not in sys.modules:
            return False
    stub = types.ModuleType("mmcv.ops", __doc__)
    for name in COMPILED_OPS:
        setattr(stub, name, _unavailable(name))
    sys.modules["mmcv.ops"] = stub
    return True
