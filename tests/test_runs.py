"""One run's lifecycle: trained once, read back while config and code are unchanged, loaded,
re-evaluated; a number is never read back from another code, and says when it is older."""
from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch

from h3r import config
from h3r import train as T
from h3r.profiles import commit_line, provenance_note
from h3r.runs import load_run, reevaluate, reevaluate_decoders, run


def tiny(tmp_path, **overrides) -> T.Config:
    values = dict(dataset="synthetic_faces", input_size=32, train_samples=32, test_samples=16, batch_size=16,
                  epochs=1, backbone="mobilenet_v2", width_mult=0.5, lr=2e-3, workers=0, progress=False,
                  out_dir=str(tmp_path / "runs"))
    return T.Config(**{**values, **overrides})


def test_a_run_is_keyed_by_its_config_and_by_the_code_that_trains_it(tmp_path, monkeypatch):
    cfg = tiny(tmp_path)
    first = run(cfg)
    saved = json.loads(cfg.folder.results.read_text())
    assert saved["code"] == config.code_fingerprint() and saved["key"] == cfg.key()
    assert run(cfg)["cached"] is True  # same config, same code: read back
    assert run(dataclasses.replace(cfg, device="cpu", progress=True))["cached"] is True  # runtime fields
    assert dataclasses.replace(cfg, lr=1e-3).key() != cfg.key()
    for module in (config, T):  # the code that trains changed
        monkeypatch.setattr(module, "code_fingerprint", lambda: "other-code")
    assert cfg.key() != first["key"]  # another run, in another folder
    again = run(cfg)
    assert again["cached"] is False and again["code"] == "other-code"
    assert json.loads((cfg.run_dir() / "results.json").read_text())["code"] == "other-code"



def test_a_synthetic_run_is_not_keyed_by_the_real_data_root(tmp_path):
    cfg = tiny(tmp_path)
    assert dataclasses.replace(cfg, data_root=str(tmp_path / "data")).key() == cfg.key()
    real = tiny(tmp_path, dataset="300w")
    assert dataclasses.replace(real, data_root=str(tmp_path / "data")).key() != real.key()

def test_load_run_gives_the_trained_network_and_its_codec(tmp_path):
    cfg = tiny(tmp_path, preset="dark", heatmap_stride=8)
    run(cfg)
    model, codec = load_run(cfg)
    state = torch.load(cfg.run_dir() / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert not model.training and codec.name == "dark" and codec.heatmap_size == (4, 4)
    with pytest.raises(FileNotFoundError, match="train the run first"):
        load_run(tiny(tmp_path / "other"))


def test_reevaluate_changes_only_the_evaluation_and_is_cached(tmp_path):
    cfg = tiny(tmp_path)
    trained = run(cfg)
    same = reevaluate(cfg)
    assert same["summary"]["all"]["NME (%)"] == pytest.approx(trained["summary"]["all"]["NME (%)"])
    argmax = reevaluate(cfg, "h3r", k=1)
    assert argmax["summary"]["all"]["NME (%)"] != same["summary"]["all"]["NME (%)"]
    files = sorted(p.name for p in cfg.run_dir().glob("eval-*.json"))
    assert len(files) == 2
    assert reevaluate(cfg, "h3r", k=1) == argmax and len(list(cfg.run_dir().glob("eval-*.json"))) == 2
    predictions = torch.load(argmax["predictions"], weights_only=False)
    assert predictions["pred"].shape == (16, 68, 2)


def test_several_decoders_are_reevaluated_from_one_pass_of_the_network(tmp_path, monkeypatch):
    cfg = tiny(tmp_path)
    run(cfg)
    alone = reevaluate(cfg, "h3r", k=1)
    passes = []
    model, codec = load_run(cfg)
    monkeypatch.setattr("h3r.runs.load_run", lambda *a: (model, codec))
    model.register_forward_hook(lambda *a: passes.append(1))
    both = reevaluate_decoders(cfg, [("h3r", {"k": 4}), ("h3r", {"k": 1}), ("dark", {"sigma": 1.0})])
    assert both[1] == alone  # read back, not recomputed
    assert len(passes) == 2  # one batch of 16, and its mirror: once for both new decoders
    assert [e["codec_args"] for e in both] == [{"k": 4}, {"k": 1}, {"sigma": 1.0}]
    assert both[0] == reevaluate(cfg, "h3r", k=4) and both[2] == reevaluate(cfg, "dark", sigma=1.0)
    nmes = [e["summary"]["all"]["NME (%)"] for e in both]
    assert len(set(nmes)) == 3
    assert len(list(cfg.run_dir().glob("eval-*.json"))) == 3


def test_the_provenance_line_names_the_commits_of_its_numbers():
    assert commit_line("abc1234") == "commit abc1234"
    assert commit_line("abc1234", ["abc1234", "abc1234"]) == "commit abc1234"
    stale = commit_line("abc1234", ["0ld0001", "abc1234"])
    assert stale == "**numbers computed at commit 0ld0001, abc1234; this build is commit abc1234**"
    cfg = SimpleNamespace(profile="smoke", seeds=[0])
    note = provenance_note(cfg, "synthetic faces", computed_at=["0ld0001"]).data
    assert "**numbers computed at commit 0ld0001; this build is commit" in note and "profile **smoke**" in note
    assert "numbers computed at" not in provenance_note(cfg, "synthetic faces").data
