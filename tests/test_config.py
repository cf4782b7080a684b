"""What a run is (h3r.config): torch-free, presets that carry their facts, the run folder, the key."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from h3r import config
from h3r.config import BINARY_LOSSES, PRESETS, Config, RunFolder, RunFolderError, preset, preset_args


def test_config_imports_no_torch():
    code = "import sys, h3r.config; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


TOY_CODEC = """
from h3r.codecs.base import register_codec
from h3r.codecs.vanilla import Vanilla


@register_codec(presets={"toy-round": {"args": {"quantize": "round", "target": "gaussian"}, "sigma": True}})
class Toy(Vanilla):
    name = "toy"
"""


def test_a_codec_is_its_file(tmp_path, monkeypatch, capsys):
    """A codec in one file of its own registers itself and its presets when imported: it is a
    preset of h3r.config, h3r train --help lists it, the codec-only table measures it."""
    import importlib

    import torch

    from h3r import analysis, cli
    from h3r.codecs import CODECS, build_codec

    (tmp_path / "toy_codec.py").write_text(TOY_CODEC)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("toy_codec")
    try:
        assert CODECS["toy"] is module.Toy
        assert config.PRESETS["toy-round"] == config.Preset("toy", {"quantize": "round", "target": "gaussian"},
                                                             sigma=True)
        assert "toy-round" in config.heatmap_presets() and build_codec("toy-round", 64).name == "toy"
        with pytest.raises(SystemExit):
            cli.main(["train", "--help"])
        assert any(line.split()[:1] == ["toy-round"] for line in capsys.readouterr().out.splitlines())
        table = analysis.codec_error_table({4: 8}, 64, torch.Generator().manual_seed(0))
        assert "toy-round" in set(table.codec)
    finally:  # the registries are the library's own: take the toy out again
        sys.modules.pop(module.__name__, None)
        PRESETS.pop("toy-round", None)
        CODECS.pop("toy", None)


def test_each_preset_states_the_facts_of_its_codec():
    from h3r.codecs import CODECS, build_codec
    from h3r.losses import LOSSES

    for name, p in PRESETS.items():
        assert p.codec in CODECS and p.loss in LOSSES, name
        codec = build_codec(name, 64, stride=4)
        assert (p.target == "expected") == codec.randomized, name
        if p.sigma:
            assert build_codec(name, 64, stride=4, sigma=1.5).sigma == 1.5, name
        assert codec.head == ("heatmap" if p.head == "binary" else p.head), name  # what its decoder reads
    assert {n for n, p in PRESETS.items() if p.head == "binary"} == {"h3r-official"}
    assert preset("onehot-round").loss == "spatial_ce" and preset("soft-argmax").loss == "l1_coords"
    with pytest.raises(ValueError, match="unknown codec preset 'nope'; the presets are"):
        preset("nope")


@pytest.mark.parametrize("name, gaussian", [("argmax-round", True), ("dark", True), ("gauss-random", True),
                                            ("udp", True), ("argmax-quarter", True), ("local-soft-argmax", True),
                                            ("h3r", False), ("onehot-round", False), ("soft-argmax", False),
                                            ("dsnt", False), ("rle", False),
                                            # SimCC's sigma is in bins, not heatmap cells: a study's is not its
                                            ("simcc", False), ("simcc-round", False), ("simcc-random", False)])
def test_preset_args_give_sigma_to_the_gaussian_presets_only(name, gaussian):
    assert preset_args(name, 1.5) == ({"sigma": 1.5} if gaussian else {})
    assert preset_args(name, None) == {}


def test_a_config_asks_its_preset_for_loss_and_head():
    assert Config(preset="h3r").resolved_loss == "spatial_ce" and Config(preset="h3r").head == "heatmap"
    assert Config(preset="dark").resolved_loss == "mse"
    assert Config(preset="h3r-official").head == "binary"
    assert Config(preset="h3r", loss="binary_ce").head == "binary" and "binary_ce" in BINARY_LOSSES


def test_a_synthetic_dataset_reads_no_data_root():
    from h3r.data.registry import DATASETS, SYNTHETIC

    assert all(name.startswith(config.SYNTHETIC_PREFIX) for name in SYNTHETIC)
    assert not any(name.startswith(config.SYNTHETIC_PREFIX) for name in DATASETS)
    assert Config(data_root="/a").key() == Config(data_root="/b").key()
    assert Config(dataset="300w", data_root="/a").key() != Config(dataset="300w", data_root="/b").key()


def test_the_run_folder_names_its_files_and_knows_when_the_run_finished(tmp_path):
    folder = Config(out_dir=str(tmp_path), name="run").folder
    assert folder == RunFolder(tmp_path / "run") and folder.checkpoint.name == "checkpoint.pt"
    assert folder.read_results() is None and not folder.finished("abc")
    folder.path.mkdir()
    folder.results.write_text(json.dumps({"key": "abc"}))
    folder.metrics.write_text('{"epoch": 1}\n{"epoch": 2}\n')
    assert folder.finished("abc") and not folder.finished("other")
    assert folder.evaluation("k1").name == "eval-k1.json"
    folder.results.write_text("{not json")
    with pytest.raises(RunFolderError, match=r"results.json is damaged .*delete it"):
        folder.read_results()
    assert not folder.finished("abc")


def test_the_fingerprint_covers_every_module_training_loads_and_no_presentation():
    code = ("import sys, h3r.train, h3r.runs; from h3r.runs import run_grid; "
            "print(' '.join(sorted(m for m in sys.modules if m == 'h3r' or m.startswith('h3r.'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    training = {m for m in loaded if m not in ("h3r.runs",)}  # the run layer schedules; train computes
    assert training <= set(config.number_modules())
    assert not any(m.startswith("h3r.study") for m in config.number_modules())
    assert not {"h3r.stats", "h3r.viz", "h3r.profiles", "h3r.analysis", "h3r.cli",
                "h3r.runs", "h3r.book"} & set(config.number_modules())


def test_a_module_imported_inside_a_function_is_covered(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from h3r.codecs.h3r import H3R\n    import h3r.metrics\n")
    assert {"h3r", "h3r.codecs", "h3r.codecs.h3r", "h3r.metrics"} <= config._h3r_imports(source)


def test_the_head_is_a_fact_of_the_preset_and_binary_follows_the_loss():
    from h3r.config import HEADS, Preset

    assert {p.head for p in PRESETS.values()} == set(HEADS)
    assert Config(preset="simcc-random").head == "simcc" and Config(preset="rle").head == "regression"
    assert Config(preset="h3r").head == "heatmap" and Config(preset="h3r-official").head == "binary"
    assert Config(preset="h3r", loss="binary_ce").head == "binary"
    assert Config(preset="h3r-official", loss="spatial_ce").head == "heatmap"
    with pytest.raises(ValueError, match="head must be one of"):
        Preset("vanilla", head="offsets")
    with pytest.raises(ValueError, match="binary head goes with the binary losses"):
        Preset("h3r", loss="binary_ce")
    with pytest.raises(ValueError, match="binary head goes with the binary losses"):
        Preset("h3r", head="binary")


def test_heatmap_presets_are_those_whose_network_outputs_heatmaps():
    from h3r.config import heatmap_presets

    names = heatmap_presets()
    assert names == [n for n in PRESETS if n in names]  # PRESETS' order
    assert {"h3r", "h3r-official", "dark", "dsnt"} <= set(names)
    assert not {"simcc", "simcc-random", "rle"} & set(names)
