"""The optional parts of h3r and what they need: a clear error instead of a bare ImportError.

The core (``h3r.codecs``, ``h3r.geometry``, ``h3r.losses``, ``h3r.metrics``) needs torch and
numpy only. Everything else lives behind a pip extra; a module of an extra calls :func:`require`
before importing what the extra brings.
"""
from __future__ import annotations

import importlib.util

#: extra -> the modules it brings that h3r imports (import names, not distribution names)
EXTRAS = {
    "data": ("cv2", "scipy", "matplotlib", "PIL", "h5py", "yaml"),
    "train": ("cv2", "scipy", "matplotlib", "PIL", "h5py", "yaml", "timm", "torchvision", "tqdm", "pandas",
              "pycocotools"),
    "book": ("papermill", "nbformat", "jupyter_book", "seaborn"),
}


def require(extra: str, what: str) -> None:
    """Raise ModuleNotFoundError naming ``extra`` if a module it brings is not installed."""
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise ModuleNotFoundError(
            f"{what} needs the [{extra}] extra of h3r ({', '.join(missing)} not installed): "
            f"pip install 'h3r[{extra}]'")
