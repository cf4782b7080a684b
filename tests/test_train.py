"""The training loop on 2 CPU cores: it learns, resumes to the same numbers, and fails clearly."""
from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
import torch

from h3r import cli
from h3r import train as T
from h3r.runs import run


def tiny(tmp_path, **overrides) -> T.Config:
    values = dict(dataset="synthetic_faces", input_size=32, train_samples=32, test_samples=16, batch_size=16,
                  epochs=2, backbone="mobilenet_v2", width_mult=0.5, lr=2e-3, workers=0, progress=False,
                  out_dir=str(tmp_path / "runs"))
    return T.Config(**{**values, **overrides})


def test_train_writes_results_with_provenance(tmp_path):
    cfg = tiny(tmp_path)
    results = run(cfg)
    saved = json.loads((cfg.run_dir() / "results.json").read_text())
    assert saved["summary"] == results["summary"] and results["cached"] is False
    assert {"commit", "device", "torch", "time_utc"} <= set(saved["provenance"])
    assert saved["config"]["preset"] == "h3r" and saved["params"] > 0 and saved["macs"] > 0
    lines = (cfg.run_dir() / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert 0 < results["summary"]["all"]["NME (%)"] < 200
    again = run(cfg)  # finished runs are found, not retrained
    assert again["cached"] is True and again["summary"] == results["summary"]


def test_resume_reaches_the_same_numbers(tmp_path, monkeypatch):
    reference = run(tiny(tmp_path / "a"))
    cfg = tiny(tmp_path / "b")
    real_epoch = T.train_one_epoch

    def crash_in_second_epoch(cfg_, net, codec, loss_fn, optimizer, scheduler, dataset, epoch, *args):
        if epoch == 1:
            raise KeyboardInterrupt("simulated interruption")
        return real_epoch(cfg_, net, codec, loss_fn, optimizer, scheduler, dataset, epoch, *args)

    monkeypatch.setattr(T, "train_one_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert torch.load(cfg.run_dir() / "checkpoint.pt", weights_only=False)["epoch"] == 1
    monkeypatch.setattr(T, "train_one_epoch", real_epoch)
    resumed = run(cfg)
    assert resumed["summary"] == reference["summary"]


def test_a_damaged_checkpoint_is_named(tmp_path):
    cfg = tiny(tmp_path, epochs=1)
    cfg.run_dir().mkdir(parents=True)
    (cfg.run_dir() / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(T.CheckpointError, match=r"checkpoint.pt.*damaged; delete it"):
        run(cfg)


def test_a_checkpoint_of_another_config_is_refused(tmp_path):
    cfg = tiny(tmp_path, epochs=1, name="shared")
    run(cfg)
    (cfg.run_dir() / "results.json").unlink()
    other = tiny(tmp_path, epochs=1, name="shared", lr=1e-4)
    with pytest.raises(T.CheckpointError, match="another config"):
        run(other)


def test_config_from_dict_names_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['epoch'\]"):
        T.Config.from_dict({"epoch": 3})


def test_every_codec_trains_one_step(tmp_path):
    for codec in ("argmax-round", "soft-argmax", "h3r", "h3r-official"):
        cfg = tiny(tmp_path, preset=codec, epochs=1, flip_test=False, render_cache=False)
        summary = run(cfg)["summary"]["all"]
        assert summary["n"] == 16, codec


def test_the_heads_of_other_codecs_train_end_to_end(tmp_path, capsys):
    """SimCC's per-axis logits and RLE's regression (with its flow) go through the same loop, the
    same evaluation (flip test included) and the command line."""
    out = tmp_path / "runs"
    assert cli.main(["train", "--preset", "simcc-random", "--input-size", "32", "--train-samples", "16",
                     "--test-samples", "8", "--batch-size", "8", "--epochs", "1", "--backbone", "plain_cnn",
                     "--width-mult", "0.25", "--workers", "0", "--no-progress", "--out-dir", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == 8 and 0 < printed["NME (%)"] < 200
    cfg = tiny(tmp_path, preset="rle", epochs=1, test_samples=8, backbone="plain_cnn", width_mult=0.25)
    model, codec = T.build_run(cfg)
    assert model.head_kind == "regression" and codec.head == "regression"
    state = run(cfg)
    assert state["summary"]["all"]["n"] == 8
    saved = torch.load(cfg.run_dir() / "checkpoint.pt", weights_only=False)["model"]
    assert any(name.startswith("head.flow.") for name in saved)  # the flow is trained and saved with the network


def test_cli_help_and_train(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    shown = capsys.readouterr().out
    assert "--heatmap-stride" in shown
    # every preset is listed with what it trains with, as timm lists its models
    from h3r.config import PRESETS

    listed = [line for line in shown.partition("codec presets (--preset NAME):")[2].splitlines() if line.strip()]
    assert [line.split()[0] for line in listed] == list(PRESETS)
    assert any(line.split()[0] == "h3r-official" and "loss binary_ce, head binary" in line for line in listed)
    out = tmp_path / "runs"
    assert cli.main(["train", "--input-size", "32", "--train-samples", "16", "--test-samples", "8",
                     "--batch-size", "8", "--epochs", "1", "--width-mult", "0.5", "--workers", "0",
                     "--no-progress", "--out-dir", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == 8 and printed["cached"] is False
    assert cli.main(["eval", "--run", printed["run"], "--no-progress", "--device", "cpu"]) == 0
    assert cli.main(["eval", "--run", str(tmp_path / "nowhere")]) == 1
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_with_torchrun_on_two_cpu_processes(tmp_path):
    """The multi-GPU path is PyTorch DDP launched by torchrun; on the CPU it runs with gloo."""
    import os
    import subprocess
    import sys

    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
           "-m", "h3r", "train", "--input-size", "32", "--train-samples", "32", "--test-samples", "8",
           "--batch-size", "8", "--epochs", "1", "--width-mult", "0.5", "--workers", "0", "--no-progress",
           "--device", "cpu", "--out-dir", str(out), "--name", "ddp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "ddp" / "results.json").read_text())
    assert results["provenance"]["world_size"] == 2 and results["summary"]["all"]["n"] == 8
    log = [json.loads(line) for line in (out / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == 1  # written once, by rank 0


MAPPED_BYTES = """
import ctypes, ctypes.util, sys
from h3r.train import keep_freed_memory
libc = ctypes.CDLL(ctypes.util.find_library("c"))
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype, libc.malloc.restype = MallInfo2, ctypes.c_void_p
if sys.argv[1] == "keep":
    assert keep_freed_memory()
before = libc.mallinfo2().hblkhd
block = libc.malloc(8 << 20)
print(libc.mallinfo2().hblkhd - before)
libc.free(ctypes.c_void_p(block))
"""


def test_cpu_training_keeps_freed_memory_for_reuse():
    """glibc maps a block of 8 MB afresh (and unmaps it on free) by default; after
    keep_freed_memory it serves it from the heap it keeps, as a training step's activations."""
    import ctypes.util
    import platform
    import subprocess
    import sys

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or \
            not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2"):
        pytest.skip("glibc 2.33 or later only (elsewhere keep_freed_memory is a no-op)")

    def mapped(mode: str) -> int:
        return int(subprocess.run([sys.executable, "-c", MAPPED_BYTES, mode], capture_output=True, text=True,
                                  check=True).stdout)

    assert mapped("default") >= 8 << 20 and mapped("keep") == 0


def test_a_run_counts_the_macs_of_its_architecture_once_per_process(monkeypatch):
    from h3r.models import count_flops

    calls = []
    monkeypatch.setattr(T, "_MACS", {})
    monkeypatch.setattr(T, "count_flops", lambda model, size: calls.append(size) or count_flops(model, size))
    cfg = T.Config(backbone="plain_cnn", width_mult=0.5, input_size=32, device="cpu")
    model, _ = T.build_run(cfg)
    first = T._macs(cfg, model)
    assert first == count_flops(model, 32) and T._macs(dataclasses.replace(cfg, seed=3), model) == first
    assert calls == [32]  # another seed, the same network: counted once
    bigger = dataclasses.replace(cfg, input_size=64)
    assert T._macs(bigger, T.build_run(bigger)[0]) > first and calls == [32, 64]


def test_simcc_runs_with_other_bins_count_their_own_macs(monkeypatch):
    """The SimCC head's linear layers grow with the bins: a cache keyed by the config's head kind
    alone gave every split ratio the first one's MACs."""
    from h3r.models import count_flops

    monkeypatch.setattr(T, "_MACS", {})
    cfgs = [T.Config(backbone="plain_cnn", width_mult=0.5, input_size=32, device="cpu", preset="simcc-round",
                     codec_args={"split_ratio": ratio}) for ratio in (0.5, 0.25)]
    models = [T.build_run(cfg)[0] for cfg in cfgs]
    fine, coarse = (T._macs(cfg, model) for cfg, model in zip(cfgs, models))
    assert fine == count_flops(models[0], 32) and coarse == count_flops(models[1], 32) and fine > coarse



def test_train_options_are_the_config_fields_as_flags():
    options = {o["flag"]: o for o in cli.train_options()}
    fields = dataclasses.fields(cli.Config)
    assert list(options) == ["--" + f.name.replace("_", "-") for f in fields]
    assert options["--heatmap-stride"]["type"] == "int"
    assert options["--heatmap-stride"]["default"] == cli.Config().heatmap_stride
    runtime = {flag for flag, o in options.items() if o["runtime"] == "runtime"}
    assert runtime == {"--" + name.replace("_", "-") for name in cli.Config.RUNTIME_FIELDS}
    assert options["--device"]["runtime"] == "runtime" and options["--preset"]["runtime"] == ""


@pytest.mark.parametrize("render_cache", [True, False])
def test_a_fixed_draw_is_kept_for_every_epoch_of_a_fixed_set(tmp_path, monkeypatch, render_cache):
    """fresh_samples=False trains on one set in every epoch; draw="fixed" then activates the same
    neighbours for a sample each time it is seen, draw="fresh" draws them again."""
    import h3r.codecs.h3r as h3r_codec

    seen: list[dict] = []

    def recording(uv, size, generator=None, uniforms=None):
        cells = randomized_cells(uv, size, generator, uniforms)
        seen.append({bytes(point.numpy()): bytes(cell.numpy()) for point, cell in zip(uv[:, 0], cells[:, 0])})
        return cells

    randomized_cells = h3r_codec.randomized_cells
    monkeypatch.setattr(h3r_codec, "randomized_cells", recording)
    epochs = {}
    for draw in ("fixed", "fresh"):
        seen.clear()
        run(tiny(tmp_path / draw, fresh_samples=False, draw=draw, epochs=2, batch_size=8, test_samples=8,
                 render_cache=render_cache, flip_test=False))
        first, second = ({k: v for batch in seen[i * 4:(i + 1) * 4] for k, v in batch.items()} for i in (0, 1))
        assert len(first) == 32 and first.keys() == second.keys()  # the same 32 samples in both epochs
        epochs[draw] = sum(first[k] != second[k] for k in first)
    assert epochs["fixed"] == 0 and epochs["fresh"] > 0


def test_draw_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="draws nothing"):
        run(tiny(tmp_path, preset="argmax-round", draw="fixed", epochs=1))
    with pytest.raises(ValueError, match="draw must be one of"):
        run(tiny(tmp_path, draw="sometimes", epochs=1))
    cfg = tiny(tmp_path)
    assert torch.equal(T.fixed_uniforms(cfg, 4, 3, torch.device("cpu")), T.fixed_uniforms(cfg, 4, 3, torch.device("cpu")))


def test_the_field_renamed_from_codec_to_preset_still_reads_old_run_folders_and_flags():
    """``Config.codec`` held a preset's name and became ``Config.preset``: a run folder or a
    checkpoint written before keeps loading, and ``--codec`` still sets it."""
    old = {**dataclasses.asdict(T.Config(preset="dark")), "codec": "dark"}
    del old["preset"]
    assert T.Config.from_dict(old) == T.Config(preset="dark")
    parser = argparse.ArgumentParser()
    cli._add_config_arguments(parser)
    assert parser.parse_args(["--codec", "udp"]).preset == "udp" == parser.parse_args(["--preset", "udp"]).preset
    with pytest.raises(ValueError, match="unknown config field"):
        T.Config.from_dict({"codecs": "dark"})
