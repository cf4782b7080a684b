"""The lean install: the wheel, installed where only torch (and what torch needs) is, gives the
core codec API, and a module of an extra says which extra it needs."""
from __future__ import annotations

import importlib.metadata as metadata
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]

CORE_ROUND_TRIP = textwrap.dedent("""
    import sys
    import torch
    from h3r.codecs import build_codec
    from h3r.losses import spatial_ce
    from h3r.metrics import nme

    codec = build_codec("h3r", 64, stride=4)
    keypoints = 2 + 58 * torch.rand(8, 5, 2, generator=torch.Generator().manual_seed(0))
    target = codec.encode(keypoints, generator=torch.Generator().manual_seed(1))
    assert spatial_ce(torch.zeros(8, 5, 16, 16), target).item() > 0
    expected = codec.expected_target(keypoints).heatmaps
    decoded, _ = codec.decode(codec.scores_from_probabilities(expected))
    assert (decoded - keypoints).abs().max() < 1e-3, (decoded - keypoints).abs().max()
    assert nme(decoded, keypoints, torch.ones(8)).max() < 1e-3
    heavy = sorted(m for m in ("cv2", "scipy", "matplotlib", "timm", "torchvision", "pandas", "PIL") if m in sys.modules)
    assert not heavy, heavy
    try:
        import h3r.data.registry
    except ModuleNotFoundError as err:
        assert "[data] extra" in str(err) and "pip install 'h3r[data]'" in str(err), err
    else:
        raise AssertionError("h3r.data imported without its extra")
    try:
        import h3r.train
    except ModuleNotFoundError as err:
        assert "[train] extra" in str(err), err
    else:
        raise AssertionError("h3r.train imported without its extra")
    print("core ok")
""")


def requirement_closure(*names: str) -> set[str]:
    """The installed distributions ``names`` need, transitively (markers evaluated, no extras)."""
    seen, todo = set(), list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def link_distributions(names: set[str], folder: Path) -> None:
    """Symlink the top-level files and folders of the installed distributions ``names`` into
    ``folder`` (their dist-info included), so that ``folder`` holds them and nothing else."""
    folder.mkdir()
    for name in names:
        dist = metadata.distribution(name)
        for entry in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            source = Path(dist.locate_file(entry))
            if source.exists() and not (folder / entry).exists():
                (folder / entry).symlink_to(source)


@pytest.mark.slow
def test_the_wheel_installs_with_torch_alone_and_the_core_round_trips(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(REPO)], check=True)
    wheel = next(wheels.glob("h3r-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    link_distributions(requirement_closure("torch", "numpy"), tmp_path / "torch-only")
    (site / "torch_only.pth").write_text(str(tmp_path / "torch-only") + "\n")
    # pip of this environment installs into the fresh one; --no-index: torch and numpy must be
    # found installed there, and nothing else may be needed
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index",
                    str(wheel)], check=True)
    result = subprocess.run([python, "-c", CORE_ROUND_TRIP], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "core ok"


def test_a_missing_extra_is_named(monkeypatch):
    from h3r import _extras

    monkeypatch.setitem(_extras.EXTRAS, "book", ("a_module_nobody_installs",))
    with pytest.raises(ModuleNotFoundError, match=r"the book tooling needs the \[book\] extra of h3r "
                                                  r"\(a_module_nobody_installs not installed\): pip install 'h3r\[book\]'"):
        _extras.require("book", "the book tooling")
    _extras.require("data", "the datasets")  # installed here: no error
