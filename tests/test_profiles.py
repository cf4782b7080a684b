"""Profiles: every chapter's settings in one table, resolved with papermill's string overrides."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from h3r import profiles
from h3r.profiles import ParameterError, chapter, resolve

PROFILES = {"smoke": dict(strides=[4, 8], n_points=10, sigma=2.0, device="auto", flip=False, root=None),
            "cpu": dict(strides=[1, 2, 4], n_points=1000, sigma=2.0, device="auto", flip=True, root=None)}


def test_resolve_takes_the_profile_and_applies_overrides():
    cfg = resolve(PROFILES, "cpu", strides=None, n_points=50)
    assert cfg.profile == "cpu" and cfg.strides == [1, 2, 4] and cfg.n_points == 50 and cfg.flip is True


def test_resolve_parses_papermill_strings():
    cfg = resolve(PROFILES, "smoke", strides="[2, 4]", n_points="20", sigma="1.5", flip="True", root="/d")
    assert (cfg.strides, cfg.n_points, cfg.sigma, cfg.flip, cfg.root) == ([2, 4], 20, 1.5, True, "/d")


@pytest.mark.parametrize("override, message", [
    (dict(n_points="many"), "cannot read 'many' as a int"),
    (dict(n_points=2.5), "must be a int"),
    (dict(strides=3), "must be a list"),
    (dict(flip=1), "must be a bool"),
    (dict(epochs=3), "'epochs' is not a setting"),
])
def test_resolve_rejects_wrong_parameters(override, message):
    with pytest.raises(ParameterError, match=message):
        resolve(PROFILES, "smoke", **override)


def test_resolve_rejects_unknown_profile():
    with pytest.raises(ParameterError, match=r"unknown profile 'gpu'.*\['cpu', 'smoke'\]"):
        resolve(PROFILES, "gpu")


def test_every_chapter_has_every_profile():
    for name, settings in profiles.CHAPTERS.items():
        assert set(settings) == set(profiles.PROFILE_NAMES), name


def test_chapter_settings_that_name_a_config_field_set_the_base():
    cfg = chapter("heatmap_resolution", "cpu", seeds="[5]", device="cpu")
    assert cfg.seeds == [5] and cfg.device.type == "cpu"
    assert cfg.base == dataclasses.replace(profiles.BASE["cpu"], dataset="synthetic_faces", device="cpu")
    with pytest.raises(ParameterError, match="unknown chapter 'nope'"):
        chapter("nope", "cpu")
    with pytest.raises(ParameterError, match="'epochs' is not a setting"):
        chapter("heatmap_resolution", "cpu", epochs=3)


def test_open_chapter_moves_to_the_repository_root_and_sets_the_style(tmp_path, monkeypatch):
    import matplotlib
    import matplotlib.pyplot as plt

    from h3r.profiles import open_chapter
    from h3r.viz import FIGSIZE

    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    matplotlib.rcdefaults()
    cfg = open_chapter("heatmap_resolution", "smoke", device="cpu")
    assert Path.cwd() == tmp_path
    assert tuple(plt.rcParams["figure.figsize"]) == FIGSIZE
    assert cfg.profile == "smoke" and cfg.base.device == "cpu"


def test_open_chapter_reads_the_parameters_cell_from_the_notebooks_namespace(monkeypatch):
    """open_chapter(name, globals()): the profile and the chapter's settings the namespace holds
    (a parameter of None keeps the profile's value); anything else in it is not a setting."""
    from h3r.profiles import chapter, open_chapter

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    namespace = {"profile": "smoke", "strides": "[4]", "seeds": None, "force": True, "pd": object()}
    cfg = open_chapter("heatmap_resolution", namespace)
    assert cfg.strides == [4] and cfg.seeds == chapter("heatmap_resolution", "smoke").seeds
    with pytest.raises(ParameterError, match="unknown profile 'fast'"):
        open_chapter("heatmap_resolution", {"profile": "fast"})


def test_a_reading_chapter_carries_its_training_settings_over():
    from h3r.profiles import chapter, reading

    findings = chapter("findings", "smoke", max_steps=3, batch_size=4)
    chapter_5 = reading("heatmap_resolution", findings, strides=[8])
    assert chapter_5.strides == [8] and chapter_5.base.max_steps == 3 and chapter_5.base.batch_size == 4
    assert chapter_5.sigma == chapter("heatmap_resolution", "smoke").sigma
