"""The official evaluation protocol (``h3r eval --weights official:... --protocol official``), end to end
on fixture datasets in the official formats, and numerically against torchalign's formulas."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures import write_300w, write_aflw2000, write_lapa, write_wflw
from fixtures.official import write_official_model
from PIL import Image
from torch import nn
from torchvision import transforms

from h3r import cli, metrics
from h3r.codecs import build_codec
from h3r.config import Config
from h3r.data.layouts import IBUG68
from h3r.data.registry import build_dataset
from h3r.data.transforms import Augment, official_crop, official_window
from h3r.evaluation import evaluate_official, official_mapping_gap, official_nme, predict, predict_decoders
from h3r.geometry import apply_affine
from h3r.protocols import official_benchmarks
from h3r.reported import reported
from h3r.runs import run
from h3r.zoo import computed_costs, readme_models
from h3r.zoo import official_model_folder, official_settings, read_official_config, resolve_weights

OFFICIAL_SPLITS = official_benchmarks()


def protocol_dataset(name, split, root, size, box, protocol="official"):
    return build_dataset(name, split, data_root=root, input_size=size, box=box, protocol=protocol)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for write in (write_wflw, write_300w, write_lapa, write_aflw2000):
        write(root)
    return root


def run_cli(*argv: str) -> int:
    return cli.main(["eval", *argv, "--no-progress", "--device", "cpu"])


# --- end to end, one benchmark each ---------------------------------------------------------------

# dataset, architecture, keypoints, input size, box, expected subsets (with their sizes) of the default split
BENCHMARKS = [
    pytest.param("wflw", "hrnet_w18", 98, 64, "P1",
                 {"pose": 1, "expression": 1, "illumination": 1, "makeup": 1, "occlusion": 0, "blur": 1},
                 marks=pytest.mark.slow),
    ("300w", "mobilenet_v2", 68, 64, "P2", {"common": 3, "challenging": 2}),
    ("lapa", "mobilenet_v2", 106, 64, "P2", {}),
    ("aflw2000", "mobilenet_v2", 68, 64, "P2", {"yaw_0_30": 2, "yaw_30_60": 1, "yaw_60_90": 2}),
]


@pytest.mark.parametrize("dataset, arch, keypoints, size, box, subsets", BENCHMARKS)
def test_official_protocol_end_to_end(root, tmp_path, capsys, dataset, arch, keypoints, size, box, subsets):
    layout = protocol_dataset(dataset, OFFICIAL_SPLITS[dataset], root, size, box).layout
    folder = tmp_path / "models" / dataset
    write_official_model(folder, arch, keypoints, size, box, flip_order=layout.flip_index)
    out = tmp_path / "result.json"
    assert run_cli("--weights", f"official:{folder}", "--dataset", dataset, "--data-root", str(root),
                   "--protocol", "official", "--json", str(out)) == 0
    printed = json.loads(capsys.readouterr().out.replace("NaN", "null"))
    result = json.loads(out.read_text().replace("NaN", "null"))
    n = {"wflw": 4, "300w": 5, "lapa": 3, "aflw2000": 5}[dataset]  # the fixture's default split
    assert printed["samples"] == result["samples"] == result["summary"]["all"]["n"] == n
    assert printed["summary"] == result["summary"]
    assert set(result["summary"]) == {"all", *subsets}
    assert {k: v["n"] for k, v in result["summary"].items() if k != "all"} == subsets
    for row in result["summary"].values():
        assert row["n"] == 0 or (math.isfinite(row["NME (%)"]) and row["NME (%)"] > 0)
    # every setting came from the config.yaml written beside model.pth, as torchalign reads it
    settings = result["settings"]
    assert (settings["arch"], settings["input_size"], settings["box"]) == (arch, size, box)
    assert result["settings_source"]["box"].endswith("config.yaml") and settings["flip_test"] is True
    assert result["params"] > 0 and result["split"] == OFFICIAL_SPLITS[dataset]


def test_protocols_differ_only_in_the_crop(root, tmp_path):
    model = write_official_model(tmp_path / "m", "mobilenet_v2", 68, 64, "P2")
    official = evaluate_official(model, dataset="aflw2000", data_root=root, device="cpu", progress=False)
    ours = evaluate_official(model, dataset="aflw2000", data_root=root, device="cpu", progress=False,
                             protocol="ours")
    assert official["samples"] == ours["samples"] == 5
    a, b = official["predictions"], ours["predictions"]
    assert torch.equal(a["gt"], b["gt"]) and torch.equal(a["normalizer"], b["normalizer"])
    assert not torch.allclose(a["pred"], b["pred"])  # another crop, another input, another answer
    assert math.isfinite(ours["summary"]["all"]["NME (%)"])


# --- the decode + flip + mapping chain, against torchalign's formulas ---------------------------------

def torchalign_landmarks(output: torch.Tensor, output_mirrored: torch.Tensor, bbox: torch.Tensor, size: int,
                         flip_order, topk: int = 9, stride: float = 4.0, scale: float = 1.25) -> torch.Tensor:
    """``FacialLandmarkDetector.forward`` of torchalign/api.py after the network, in float32 as there:
    ``heatmap2coord`` on channel 1, the flip test, then ``resized_crop_inverse`` of the ``rect`` of
    ``resized_crop``. output: (N, 2, K, H, W) for the image and for its mirror; bbox (N, 4)."""
    def decode(out):
        heatmap = out[:, 1]
        n, c, h, w = heatmap.shape
        score, index = heatmap.reshape(n, c, 1, -1).topk(topk, dim=-1)
        coord = torch.cat([index % w, index // w], dim=2)
        return stride * (coord * F.softmax(score, dim=-1)).sum(-1)

    wh = (bbox[:, 2:] - bbox[:, :2] + 1).max(1)[0] * scale
    xy = (bbox[:, :2] + bbox[:, 2:] - wh.unsqueeze(1) + 1) / 2.0
    rect = torch.cat([xy, xy + wh.unsqueeze(1)], 1)
    landmark = decode(output)
    mirrored = decode(output_mirrored)
    mirrored[..., 0] = size - 1 - mirrored[..., 0]
    landmark = (landmark + mirrored[..., flip_order, :]) / 2.0
    factor = torch.stack([size / (rect[:, 2] - rect[:, 0]), size / (rect[:, 3] - rect[:, 1])]).t()
    return landmark / factor[:, None, :] + rect[:, None, :2]


class HandMadeHead(nn.Module):
    """Returns fixed binary-head logits (N, 2, K, H, W) for known images and their mirrors."""

    head_kind = "binary"

    def __init__(self, images: torch.Tensor, logits: torch.Tensor, logits_mirrored: torch.Tensor):
        super().__init__()
        self.images, self.logits, self.logits_mirrored = images, logits, logits_mirrored

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        out = []
        for image in batch:
            plain = [torch.equal(image, x) for x in self.images]
            mirror = [torch.equal(image, x.flip(-1)) for x in self.images]
            assert any(plain) or any(mirror), "an image the hand-made head does not know"
            out.append(self.logits[plain.index(True)] if any(plain) else self.logits_mirrored[mirror.index(True)])
        return torch.stack(out)


@pytest.mark.parametrize("dataset, box", [("wflw", "P2"), ("300w", "P1")])
def test_decode_flip_and_mapping_match_torchalign(root, dataset, box):
    size, stride = 64, 4
    data = protocol_dataset(dataset, OFFICIAL_SPLITS[dataset], root, size, box)
    n, k = len(data), data.layout.num_keypoints
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(n, 2, k, size // stride, size // stride, generator=g)
    logits_mirrored = 3 * torch.randn(n, 2, k, size // stride, size // stride, generator=g)
    images = torch.stack([data[i]["image"] for i in range(n)])
    model = HandMadeHead(images, logits, logits_mirrored)
    codec = build_codec("h3r-official", size, stride=stride)
    ours = predict(model, codec, data, torch.device("cpu"), batch_size=2, flip_test=True,
                     score_mode="foreground", progress=False)
    bbox = torch.from_numpy(data.boxes).float()
    expected = torchalign_landmarks(logits, logits_mirrored, bbox, size, list(data.layout.flip_index))
    assert (ours["pred"] - expected).abs().max() < 1e-3  # pixels; torchalign computes in float32
    # ... and the NME is the official script's: mean point error / the normalising distance, per image
    gt = torch.from_numpy(data.ann.keypoints).float()
    i, j = data.layout.normalizer_index
    official_nme = ((expected - gt).norm(dim=2).mean(dim=1) / (gt[:, i] - gt[:, j]).norm(dim=-1)).mean()
    nme = metrics.nme(ours["pred"], ours["gt"], ours["normalizer"], ours["visible"]).mean()
    assert abs(nme.item() - official_nme.item()) < 1e-5
    # the flip test is what makes the two channels of logits count: without it only the first is read
    plain = predict(model, codec, data, torch.device("cpu"), flip_test=False, progress=False)
    assert not torch.allclose(plain["pred"], ours["pred"])


def test_decoders_read_from_one_pass_give_what_each_gives_alone():
    from h3r.data.synthetic import SyntheticFaces
    from h3r.models import build_model

    torch.manual_seed(0)
    model = build_model("plain_cnn", 68, heatmap_stride=4, width_mult=0.5).eval()
    data = SyntheticFaces(split="test", length=6, input_size=32)
    codecs = [build_codec(name, 32, stride=4, **args)
              for name, args in (("h3r", {}), ("h3r", {"k": 1}), ("dark", {"sigma": 1.0}))]
    together = predict_decoders(model, codecs, data, torch.device("cpu"), batch_size=4, progress=False)
    for codec, joint in zip(codecs, together):
        alone = predict(model, codec, data, torch.device("cpu"), batch_size=4, progress=False)
        assert joint.keys() == alone.keys()
        assert all(torch.equal(joint[k], alone[k]) for k in alone if k != "subsets")
    assert not torch.equal(together[0]["pred"], together[1]["pred"])


def test_official_render_is_torchalign_pixels(root):
    """The crop fed to the network: PIL crop of rect, torchvision Resize, ToTensor, Normalize."""
    data = protocol_dataset("wflw", "test", root, 64, "P2")
    transform = transforms.Compose([transforms.Resize([64, 64]), transforms.ToTensor(),
                                    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    for i in range(len(data)):
        bbox = torch.from_numpy(data.boxes[i]).float()[None]
        wh = (bbox[:, 2:] - bbox[:, :2] + 1).max(1)[0] * 1.25
        xy = (bbox[:, :2] + bbox[:, 2:] - wh.unsqueeze(1) + 1) / 2.0
        rect = torch.cat([xy, xy + wh.unsqueeze(1)], 1)[0]
        with Image.open(data.ann.images[i]) as image:
            expected = transform(image.convert("RGB").crop(rect.tolist()))
        assert torch.allclose(data[i]["image"], expected, atol=1e-5)
        # the window PIL crops is the one official_crop's mapping sends onto the input's corners
        window = torch.tensor(official_window(data.boxes[i]), dtype=torch.float64).view(2, 2)
        _, mapping = official_crop(data.boxes[i], (64, 64))
        corners = torch.tensor([[0.0, 0.0], [64.0, 64.0]], dtype=torch.float64)
        assert torch.allclose(apply_affine(window, mapping), corners)


# --- settings: config.yaml as torchalign reads it ---------------------------------------------------------

def test_settings_come_from_config_yaml_then_arguments_then_defaults(tmp_path):
    model = write_official_model(tmp_path / "m", "mobilenet_v2", 68, 128, "P2", flip_order=IBUG68.flip_index)
    assert resolve_weights(f"official:{tmp_path / 'm'}") == (model, tmp_path / "m" / "config.yaml")
    assert read_official_config(tmp_path / "m" / "config.yaml") == {
        "input_size": 128, "box": "P2", "flip_order": IBUG68.flip_index, "arch": "mobilenet_v2", "keypoints": 68,
        "topk": 9}
    settings = official_settings(model, tmp_path / "m" / "config.yaml", box="P1")
    assert (settings.arch, settings.input_size, settings.box, settings.padding) == ("mobilenet_v2", 128, "P1", 1.25)
    assert settings.source["box"] == "argument" and settings.source["padding"] == "torchalign/cfg.py default"
    bare = official_settings(model)  # no config.yaml: torchalign's defaults, the backbone read off the keys
    assert (bare.arch, bare.input_size, bare.box, bare.flip_test) == ("mobilenet_v2", 256, "P1", True)
    assert bare.source["arch"] == "guessed from the weights"


def test_bad_config_yaml(tmp_path):
    model = write_official_model(tmp_path / "m", "mobilenet_v2", 68, 128, "P2")
    config = tmp_path / "m" / "config.yaml"
    config.write_text(config.read_text().replace("mobilenetv2", "resnet50"))
    with pytest.raises(ValueError, match=r"config\.yaml: BACKBONE\.ARCH 'resnet50' is not one h3r converts"):
        official_settings(model, config)
    config.write_text("INPUT:\n  SIZE: [256, 192]\n")
    with pytest.raises(ValueError, match=r"INPUT\.SIZE must be a square"):
        official_settings(model, config)


def test_readme_rows_name_the_official_folders():
    rows = reported("official_readme", metric="NME")
    folders = [official_model_folder(r.dataset, r.backbone, r.bbox, r.input_size) for r in rows.itertuples()]
    assert len(rows) == 14 and len(set(folders)) == 14
    assert folders[0] == "models/wflw/hrnet18_256x256_p1"
    assert "models/300wlp/pts3d/mobilenet_128x128_p2" in folders


def test_the_official_folders_exist_in_the_official_repository(official_snapshot):
    rows = reported("official_readme", metric="NME")
    folders = [official_model_folder(r.dataset, r.backbone, r.bbox, r.input_size) for r in rows.itertuples()]
    tree = subprocess.run(["git", "--git-dir", str(official_snapshot), "ls-tree", "-r", "--name-only", "HEAD", "models"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert all(f"{f}/model.pth" in tree and f"{f}/config.yaml" in tree for f in folders)


# --- errors ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_68(tmp_path_factory) -> Path:
    return write_official_model(tmp_path_factory.mktemp("m68"), "mobilenet_v2", 68, 64, "P2", config=False)


def test_missing_weights(root, tmp_path, capsys):
    assert run_cli("--weights", f"official:{tmp_path / 'nowhere' / 'model.pth'}", "--dataset", "wflw") == 1
    err = capsys.readouterr().err
    assert "no official weights at" in err and "nowhere" in err and "never downloads" in err
    (tmp_path / "empty").mkdir()
    assert run_cli("--weights", f"official:{tmp_path / 'empty'}", "--dataset", "wflw") == 1
    assert f"no official weights at {tmp_path / 'empty' / 'model.pth'}" in capsys.readouterr().err


def test_wrong_weights_file(root, tmp_path, capsys, model_68):
    (tmp_path / "model.pth").write_text("not weights")
    assert run_cli("--weights", f"official:{tmp_path / 'model.pth'}", "--arch", "hrnet_w18", "--dataset", "300w",
                   "--data-root", str(root)) == 1
    assert "model.pth is not a PyTorch checkpoint" in capsys.readouterr().err
    data = model_68.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 3])
    assert run_cli("--weights", f"official:{tmp_path / 'cut.pth'}", "--arch", "mobilenet_v2", "--dataset", "300w",
                   "--data-root", str(root)) == 1
    assert "cut.pth cannot be read as a checkpoint" in capsys.readouterr().err
    assert run_cli("--weights", str(model_68), "--dataset", "300w") == 1  # no official: prefix
    assert "write official:PATH" in capsys.readouterr().err


def test_missing_dataset(tmp_path, capsys, model_68):
    assert run_cli("--weights", f"official:{model_68}", "--dataset", "aflw2000", "--data-root", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "dataset 'aflw2000' not found" in err and str(tmp_path / "aflw2000") in err and "3DDFA" in err


def test_keypoint_count_mismatch(root, tmp_path, capsys, model_68):
    assert run_cli("--weights", f"official:{model_68}", "--dataset", "lapa", "--data-root", str(root)) == 1
    assert "predicts 68 keypoints but lapa has 106 (lapa106)" in capsys.readouterr().err
    write_official_model(tmp_path / "m", "mobilenet_v2", 98, 64, "P2", flip_order=list(range(98))[::-1])
    assert run_cli("--weights", f"official:{tmp_path / 'm'}", "--dataset", "wflw", "--data-root", str(root)) == 1
    assert "INPUT.FLIP_ORDER differs from the flip order of wflw" in capsys.readouterr().err


def test_argument_errors(root, tmp_path, capsys, model_68):
    assert run_cli("--weights", f"official:{model_68}") == 1
    assert "--weights needs --dataset" in capsys.readouterr().err
    assert run_cli("--run", str(tmp_path), "--arch", "hrnet_w18") == 1
    assert "--arch only apply to --weights" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: exactly one of --run and --weights
        run_cli("--run", str(tmp_path), "--weights", f"official:{model_68}")
    with pytest.raises(ValueError, match="official weights are evaluated on"):
        evaluate_official(model_68, dataset="cofw", data_root=root, device="cpu")
    with pytest.raises(ValueError, match="protocol must be one of"):
        protocol_dataset("wflw", "test", root, 64, "P1", protocol="torchalign")
    with pytest.raises(ValueError, match="the official protocol takes no augmentation|takes no augmentation"):
        build_dataset("wflw", "test", data_root=root, input_size=64, protocol="official", augment=Augment())


# --- an h3r run, under both protocols ----------------------------------------------------------------------------

@pytest.mark.slow
def test_run_under_both_protocols(root, tmp_path, capsys):
    cfg = Config(dataset="wflw", data_root=str(root), input_size=32, backbone="mobilenet_v2", epochs=1,
                   batch_size=2, workers=0, device="cpu", progress=False, out_dir=str(tmp_path / "runs"))
    run(cfg)
    results = {}
    for protocol in ("ours", "official"):
        assert run_cli("--run", str(cfg.run_dir()), "--protocol", protocol, "--json", str(tmp_path / protocol)) == 0
        results[protocol] = json.loads((tmp_path / protocol).read_text().replace("NaN", "null"))
    capsys.readouterr()
    ours, official = results["ours"], results["official"]
    assert ours["samples"] == official["samples"] == 4
    assert all(math.isfinite(r["summary"]["all"]["NME (%)"]) for r in (ours, official))
    assert ours["summary"]["all"]["NME (%)"] != official["summary"]["all"]["NME (%)"]
    stored = json.loads((cfg.run_dir() / "results.json").read_text().replace("NaN", "null"))
    assert np.isclose(ours["summary"]["all"]["NME (%)"], stored["summary"]["all"]["NME (%)"])


# --- one README row of chapter 9 ----------------------------------------------------------------------

def test_official_nme_says_what_a_row_needs_and_the_command_that_fills_it(tmp_path):
    row = official_nme("WFLW", "HRNet-W18", "P1", 256)
    assert math.isnan(row["NME h3r (%)"])
    assert row["status"] == "needs weights and data"
    assert row["test set"] == "wflw/test"
    assert row["command"] == ("h3r eval --weights official:WEIGHTS_DIR/models/wflw/hrnet18_256x256_p1 --dataset "
                              "wflw --data-root DATA_ROOT --protocol official --json "
                              "runs/official/wflw/hrnet18_256x256_p1.json")
    write_wflw(tmp_path / "data")
    row = official_nme("WFLW", "HRNet-W18", "P1", 256, weights_dir=str(tmp_path), data_root=str(tmp_path / "data"))
    assert row["status"] == "needs weights"
    write_official_model(tmp_path / "models/wflw/hrnet18_256x256_p1", "hrnet_w18", 98, config=False)
    row = official_nme("WFLW", "HRNet-W18", "P1", 256, weights_dir=str(tmp_path), data_root=str(tmp_path / "data"))
    assert row["status"] == "ready: run the command, or evaluate=True"
    assert math.isnan(row["NME h3r (%)"])


def test_official_nme_reads_a_saved_result_only_for_its_own_setting(tmp_path):
    result = tmp_path / "300w/mobilenet_128x128_p2.json"
    result.parent.mkdir()
    saved = {"protocol": "official", "settings": {"box": "P2", "input_size": 128}, "split": "full", "samples": 689,
             "summary": {"all": {"NME (%)": 3.5}}}
    result.write_text(json.dumps(saved))
    row = official_nme("300W", "MobileNetV2", "P2", 128, results_dir=str(tmp_path))
    assert (row["NME h3r (%)"], row["test set"], row["status"]) == (3.5, "300w/full (689 faces)", f"from {result}")
    result.write_text(json.dumps({**saved, "settings": {"box": "P1", "input_size": 128}}))
    row = official_nme("300W", "MobileNetV2", "P2", 128, results_dir=str(tmp_path))
    assert math.isnan(row["NME h3r (%)"])
    assert row["status"] == f"{result} is for another setting; run the command again"


def test_official_mapping_gap_has_the_predicted_mean_and_vanishes_where_the_window_is_the_input():
    gap = official_mapping_gap(160, 256, boxes=16)
    assert gap["window wh (px)"] == 200 and gap["(1 - wh/S) / 2 (px)"] == pytest.approx((1 - 200 / 256) / 2)
    # the systematic part is (1 - wh/S) / 2; the window's rounding adds at most half a pixel either way
    assert abs(gap["mean gap (px)"] - gap["(1 - wh/S) / 2 (px)"]) < 0.5
    assert gap["max |gap| / side (%)"] == pytest.approx(100 * gap["max |gap| (px)"] / 160)
    exact = official_mapping_gap(204.8, 256, boxes=16)
    assert exact["(1 - wh/S) / 2 (px)"] == pytest.approx(0)
    assert abs(exact["mean gap (px)"]) < 0.5 and exact["max |gap| (px)"] <= 1



def test_readme_models_are_the_fourteen_rows_with_what_rebuilds_them():
    models = readme_models()
    assert len(models) == 14
    assert list(models.columns) == ["dataset", "backbone", "bbox", "input_size", "Params", "FLOPs", "NME",
                                    "keypoints", "arch"]
    first = models.iloc[0]
    assert (first.dataset, first.backbone, first.keypoints, first.arch) == ("WFLW", "HRNet-W18", 98, "hrnet_w18")
    assert set(models[models.dataset == "AFLW2000-3D"].keypoints) == {68}
    assert set(models.arch) == {"hrnet_w18", "mobilenet_v2"}


def test_computed_costs_match_the_readme_with_thops_batchnorm_term():
    models = readme_models()
    small = models[(models.arch == "mobilenet_v2") & (models.input_size == 128)]
    costs = computed_costs(small)
    assert list(costs.index) == list(small.index)
    assert list(costs.columns) == ["params h3r (M)", "MACs h3r (G)", "FLOPs h3r, thop-style (G)"]
    assert list(costs["params h3r (M)"].round(2)) == list(small.Params)
    assert list(costs["FLOPs h3r, thop-style (G)"].round(2)) == list(small.FLOPs)
    assert (costs["MACs h3r (G)"] < costs["FLOPs h3r, thop-style (G)"]).all()
