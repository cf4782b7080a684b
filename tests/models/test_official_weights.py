"""The official-checkpoint converter, tested without the real weights.

The official state dicts are spelled out here independently of timm and torchvision, from the
module structure of torchalign (baoshengyu/H3R: ``torchalign/api.py``, ``backbone/hrnet.py``,
``backbone/mobilenet.py``, ``heatmap_head/blocks/head_block.py``), and filled with random tensors.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from h3r.models import binary_scores, build_model, count_params
from h3r.models.official import (convert_official_state_dict, guess_official_arch, load_official,
                                 official_key)
from tests.fixtures.official import MOBILENET_PLAN, official_hrnet, official_mobilenet, random_state

# README figures (#Params, M) of the released models, by backbone and keypoint count
REPORTED_PARAMS = {("hrnet_w18", 98): 9.69, ("hrnet_w18", 68): 9.67, ("hrnet_w18", 106): 9.69,
                   ("mobilenet_v2", 98): 0.60, ("mobilenet_v2", 68): 0.59, ("mobilenet_v2", 106): 0.60}


# the official names and shapes: tests/fixtures/official.py
OFFICIAL = {"hrnet_w18": lambda k: official_hrnet(18, k), "hrnet_w32": lambda k: official_hrnet(32, k),
            "mobilenet_v2": official_mobilenet}


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("official") / "model.pth"
    torch.save(random_state(official_mobilenet(98)), path)
    return path


# --- loading -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch, keypoints", [  # hrnet_w18: see test_converted_hrnet_computes_...
    ("mobilenet_v2", 98), pytest.param("hrnet_w32", 106, marks=pytest.mark.slow)])
def test_official_file_loads_strictly_and_every_tensor_lands(tmp_path, arch, keypoints):
    state = random_state(OFFICIAL[arch](keypoints))
    torch.save(state, tmp_path / "model.pth")
    model = load_official(tmp_path / "model.pth", arch, keypoints)
    assert not model.training and model.head_kind == "binary" and model.num_keypoints == keypoints
    assert model.heatmap_stride == 4
    # every official tensor landed, unchanged, under its converted name
    ours = model.state_dict()
    converted = convert_official_state_dict(state, arch)
    assert len(converted) == len(state) == len(ours)
    assert all(torch.equal(ours[k], v) for k, v in converted.items())


@pytest.mark.parametrize("arch, keypoints", sorted(REPORTED_PARAMS))
def test_param_counts_after_conversion_are_the_reported_ones(arch, keypoints):
    shapes = OFFICIAL[arch](keypoints)
    learned = sum(torch.Size(s).numel() for k, s in shapes.items() if k.endswith(("weight", "bias")))
    assert round(learned / 1e6, 2) == REPORTED_PARAMS[arch, keypoints]  # the official shapes themselves
    model = build_model(arch, keypoints, head="binary")
    model.load_state_dict(convert_official_state_dict({k: torch.zeros(s) for k, s in shapes.items()}, arch))
    assert round(count_params(model) / 1e6, 2) == REPORTED_PARAMS[arch, keypoints]


def test_num_batches_tracked_may_be_absent(tmp_path):
    state = {k: v for k, v in random_state(official_mobilenet(5)).items() if "num_batches" not in k}
    torch.save(state, tmp_path / "old.pth")
    assert load_official(tmp_path / "old.pth", "mobilenet_v2").num_keypoints == 5


# --- behaviour: the converted MobileNetV2 computes what torchalign's does --------------------------------

class OfficialBlock(nn.Module):
    """torchalign's inverted residual: one flat Sequential named ``conv``."""

    def __init__(self, c_in, c_out, t, stride):
        super().__init__()
        h = t * c_in
        layers = [] if t == 1 else [nn.Conv2d(c_in, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6()]
        layers += [nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                   nn.Conv2d(h, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class OfficialDetector(nn.Module):
    """torchalign's FacialLandmarkDetector with the MobileNetV2 backbone, up to the head's logits."""

    def __init__(self, keypoints):
        super().__init__()
        blocks = [nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())]
        c_in = 32
        for t, c, n, s in MOBILENET_PLAN:
            for i in range(n):
                blocks.append(OfficialBlock(c_in, c, t, s if i == 0 else 1))
                c_in = c
        self.backbone = nn.Module()
        self.backbone.features = nn.Sequential(*blocks)
        self.heatmap_head = nn.Module()
        self.heatmap_head.head = nn.Module()
        self.heatmap_head.head.layers = nn.Sequential(nn.Conv2d(152, 152, 1, bias=False), nn.BatchNorm2d(152),
                                                      nn.ReLU(), nn.Conv2d(152, 2 * keypoints, 1, bias=False))

    def forward(self, x):
        f = self.backbone.features
        c2 = f[:4](x)
        c3 = f[4:7](c2)
        c4 = f[7:14](c3)
        fused = torch.cat([F.interpolate(c, size=c2.shape[-2:], mode="bilinear", align_corners=False)
                           for c in (c2, c3, c4)], 1)
        out = self.heatmap_head.head.layers(fused)
        n, _, h, w = out.shape
        return out.view(n, 2, -1, h, w)


def test_converted_mobilenet_computes_the_official_output(mobilenet_file):
    official = OfficialDetector(98).eval()
    state = torch.load(mobilenet_file, weights_only=True)
    official.load_state_dict(state, strict=True)  # the spelled-out names are the module's own
    model = load_official(mobilenet_file, "mobilenet_v2")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = official(x), model(x)
    assert got.shape == (2, 2, 98, 16, 16)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)
    # the official decoder ranks the foreground logits (channel 1)
    assert torch.equal(binary_scores(got, "foreground"), got[:, 1])


def official_hrnet_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """torchalign's HRNet + BinaryHeadBlock in eval mode, written as functions of the official keys."""
    def cbn(x, conv, bn, stride=1, relu=True):
        w = state[f"{conv}.weight"]
        x = F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2)
        x = F.batch_norm(x, state[f"{bn}.running_mean"], state[f"{bn}.running_var"],
                         state[f"{bn}.weight"], state[f"{bn}.bias"])
        return F.relu(x) if relu else x

    b = "backbone"
    x = cbn(cbn(x, f"{b}.conv1", f"{b}.bn1", 2), f"{b}.conv2", f"{b}.bn2", 2)
    for i in range(4):  # Bottlenecks
        p = f"{b}.layer1.{i}"
        y = cbn(cbn(x, f"{p}.conv1", f"{p}.bn1"), f"{p}.conv2", f"{p}.bn2")
        y = cbn(y, f"{p}.conv3", f"{p}.bn3", relu=False)
        x = F.relu(y + (cbn(x, f"{p}.downsample.0", f"{p}.downsample.1", relu=False) if i == 0 else x))
    xs = [x]
    for stage, modules in [(2, 1), (3, 4), (4, 3)]:
        t = f"{b}.transition{stage - 1}"
        xs = [cbn(xs[-1], f"{t}.{i}.0.0", f"{t}.{i}.0.1", 2) if i == len(xs)
              else cbn(xs[i], f"{t}.{i}.0", f"{t}.{i}.1") if f"{t}.{i}.0.weight" in state else xs[i]
              for i in range(stage)]
        for m in range(modules):
            p = f"{b}.stage{stage}.{m}"
            for br in range(stage):
                for blk in range(4):  # BasicBlocks
                    q = f"{p}.branches.{br}.{blk}"
                    y = cbn(cbn(xs[br], f"{q}.conv1", f"{q}.bn1"), f"{q}.conv2", f"{q}.bn2", relu=False)
                    xs[br] = F.relu(y + xs[br])
            fused = []
            for i in range(stage):
                total = xs[i]
                for j in (j for j in range(stage) if j != i):
                    f, y = f"{p}.fuse_layers.{i}.{j}", xs[j]
                    if j > i:
                        y = F.interpolate(cbn(y, f"{f}.0", f"{f}.1", relu=False), scale_factor=2 ** (j - i))
                    for k in range(i - j):
                        y = cbn(y, f"{f}.{k}.0", f"{f}.{k}.1", 2, relu=k < i - j - 1)
                    total = total + y
                fused.append(F.relu(total))
            xs = fused
    x = torch.cat([xs[0], *(F.interpolate(y, size=xs[0].shape[-2:], mode="bilinear", align_corners=False)
                            for y in xs[1:])], 1)
    h = "heatmap_head.head.layers"
    out = F.conv2d(cbn(x, f"{h}.0", f"{h}.1"), state[f"{h}.3.weight"])
    n, _, hh, ww = out.shape
    return out.view(n, 2, -1, hh, ww)


@pytest.mark.slow
def test_converted_hrnet_computes_the_official_output(tmp_path):
    state = random_state(official_hrnet(18, 7))
    torch.save(state, tmp_path / "model.pth")
    model = load_official(tmp_path / "model.pth", "hrnet_w18")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, got = official_hrnet_forward(state, x), model(x)
    assert got.shape == (2, 2, 7, 16, 16)
    assert expected.std(dim=(-2, -1)).min() > 1e-4  # the random network did not die: maps vary
    assert (got - expected).abs().max() < 1e-3 * expected.std()


# --- a wrong file is explained ----------------------------------------------------------------------------

def resave(tmp_path, state, name="bad.pth"):
    torch.save(state, tmp_path / name)
    return tmp_path / name


def test_missing_key(tmp_path, mobilenet_file):
    state = torch.load(mobilenet_file, weights_only=True)
    del state["backbone.features.7.conv.4.running_var"]
    # named as the file spells it (torchvision's name would be features.7.conv.1.1.running_var)
    with pytest.raises(ValueError, match=r"bad\.pth.*1 missing.*'backbone\.features\.7\.conv\.4\.running_"):
        load_official(resave(tmp_path, state), "mobilenet_v2")


def test_extra_key(tmp_path, mobilenet_file):
    state = torch.load(mobilenet_file, weights_only=True)
    state["backbone.features.14.conv.0.weight"] = torch.zeros(576, 96, 1, 1)
    with pytest.raises(ValueError, match=r"bad\.pth.*1 unexpected.*features\.14"):
        load_official(resave(tmp_path, state), "mobilenet_v2")
    state = torch.load(mobilenet_file, weights_only=True) | {"optimizer.step": torch.zeros(())}
    with pytest.raises(ValueError, match=r"bad\.pth.*optimizer\.step"):
        load_official(resave(tmp_path, state), "mobilenet_v2")


def test_wrong_shape(tmp_path, mobilenet_file):
    state = torch.load(mobilenet_file, weights_only=True)
    state["backbone.features.3.conv.6.weight"] = torch.zeros(24, 144, 3, 3)
    with pytest.raises(ValueError, match=r"bad\.pth.*wrong shape.*'backbone\.features\.3\.conv\.6\.weight': "
                                         r"\(24, 144, 3, 3\) where \(24, 144, 1, 1\)"):
        load_official(resave(tmp_path, state), "mobilenet_v2")


def test_wrong_keypoint_count(mobilenet_file):
    with pytest.raises(ValueError, match=r"model\.pth predicts 98 keypoints.*not 68"):
        load_official(mobilenet_file, "mobilenet_v2", 68)


def test_wrong_architecture(tmp_path, mobilenet_file):
    with pytest.raises(ValueError, match=r"model\.pth \(read as hrnet_w18; it looks like mobilenet_v2\)"):
        load_official(mobilenet_file, "hrnet_w18")
    with pytest.raises(ValueError, match="unknown official architecture"):
        load_official(mobilenet_file, "resnet50")


def test_truncated_file(tmp_path, mobilenet_file):
    data = mobilenet_file.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.pth cannot be read.*truncated"):
        load_official(tmp_path / "cut.pth", "mobilenet_v2")


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "config.yaml").write_text("BACKBONE:\n  ARCH: 'hrnet18'\n")
    with pytest.raises(ValueError, match=r"config\.yaml is not a PyTorch checkpoint"):
        load_official(tmp_path / "config.yaml", "hrnet_w18")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list\.pth holds a list, not a state dict"):
        load_official(tmp_path / "list.pth", "hrnet_w18")
    torch.save({"backbone.conv1.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "headless.pth")
    with pytest.raises(ValueError, match=r"headless\.pth has no 'heatmap_head\.head\.layers\.3\.weight'"):
        load_official(tmp_path / "headless.pth", "hrnet_w18")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_official(tmp_path / "missing.pth", "hrnet_w18")


@pytest.mark.parametrize("arch", sorted(OFFICIAL))
def test_errors_name_keys_as_the_file_spells_them(arch):
    official = list(OFFICIAL[arch](3))
    converted = convert_official_state_dict(dict.fromkeys(official, torch.zeros(())), arch)
    assert [official_key(k, arch) for k in converted] == official


def test_guess_official_arch():
    assert guess_official_arch(random_state(official_hrnet(18, 3))) == "hrnet_w18"
    assert guess_official_arch(random_state(official_mobilenet(3))) == "mobilenet_v2"
    assert guess_official_arch({"foo": torch.zeros(1)}) is None
