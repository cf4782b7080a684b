"""Without mmpose, importing h3r.integrations.mmpose says how to install it. Runs everywhere:
mmpose's absence is simulated (``None`` in ``sys.modules`` makes its import fail)."""
from __future__ import annotations

import importlib
import sys

import pytest


def test_import_without_mmpose_explains_how_to_install(monkeypatch):
    for name in [m for m in sys.modules if m == "mmpose" or m.startswith("mmpose.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mmpose", None)
    monkeypatch.delitem(sys.modules, "h3r.integrations.mmpose", raising=False)
    with pytest.raises(ImportError) as error:
        importlib.import_module("h3r.integrations.mmpose")
    message = str(error.value)
    assert "mmpose 1.x" in message and "mmengine" in message and "mmcv-lite" in message
    assert "pip install --no-deps mmpose==1.3.2" in message and "make peer" in message
    assert isinstance(error.value.__cause__, ImportError)
