"""Networks: shapes, strides, the binary head's layout, counting against the official README."""
from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision

from h3r.models import HEATMAP_STRIDES, binary_scores, build_model, count_flops, count_params
from h3r.models.backbones import fuse_to_stride4
from h3r.models.heads import HeatmapHead, resample_to_stride

# Reported in the official README (baoshengyu/H3R README.md and models/README.md): #Params (M)
# and "FLOPs" (G, thop MACs) of the released binary-head models, stride 4, square inputs.
# (backbone, keypoints, input side) -> (params M, FLOPs G)
REPORTED = {
    ("hrnet_w18", 98, 256): (9.69, 4.84),     # WFLW
    ("hrnet_w18", 68, 256): (9.67, 4.77),     # 300W
    ("hrnet_w18", 68, 128): (9.67, 1.19),     # AFLW2000-3D (trained on 300W-LP)
    ("hrnet_w18", 106, 256): (9.69, 4.86),    # LaPa
    ("mobilenet_v2", 98, 256): (0.60, 0.51),  # WFLW
    ("mobilenet_v2", 98, 160): (0.60, 0.20),
    ("mobilenet_v2", 98, 128): (0.60, 0.13),
    ("mobilenet_v2", 68, 256): (0.59, 0.47),  # 300W
    ("mobilenet_v2", 68, 128): (0.59, 0.12),  # 300W, AFLW2000-3D
    ("mobilenet_v2", 106, 256): (0.60, 0.52),  # LaPa
    ("mobilenet_v2", 106, 128): (0.60, 0.13),
}


@pytest.fixture(scope="module")
def hrnet():
    return build_model("hrnet_w18", 5, head="binary").eval()


@pytest.fixture(scope="module")
def mobilenet():
    return build_model("mobilenet_v2", 5, head="heatmap").eval()


# --- shapes and strides -------------------------------------------------------------------------

@pytest.mark.parametrize("backbone, channels", [("hrnet_w18", 270), ("mobilenet_v2", 152)])
def test_fused_features_are_stride_4_with_the_papers_channels(backbone, channels, hrnet, mobilenet):
    model = hrnet if backbone == "hrnet_w18" else mobilenet
    with torch.no_grad():
        features = model.backbone(torch.randn(2, 3, 64, 96))
    assert features.shape == (2, channels, 16, 24)
    assert model.backbone.out_channels == channels


@pytest.mark.parametrize("stride", HEATMAP_STRIDES)
@pytest.mark.parametrize("head", ["heatmap", "binary"])
def test_output_shape_at_every_stride(stride, head):
    model = build_model("mobilenet_v2", 7, head=head, heatmap_stride=stride, width_mult=0.35).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    hw = (64 // stride, 96 // stride)
    assert out.shape == ((1, 7, *hw) if head == "heatmap" else (1, 2, 7, *hw))
    assert (model.heatmap_stride, model.num_keypoints, model.head_kind) == (stride, 7, head)


def test_hrnet_forward_binary(hrnet):
    with torch.no_grad():
        out = hrnet(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 2, 5, 16, 16) and torch.isfinite(out).all()


def test_width_multiplier_changes_mobilenet_channels():
    model = build_model("mobilenet_v2", 3, width_mult=0.5)
    # torchvision rounds 24/32/96 x 0.5 to multiples of 8: 16 + 16 + 48
    assert model.backbone.out_channels == 80
    assert model.backbone(torch.randn(1, 3, 32, 32)).shape == (1, 80, 8, 8)


def test_input_size_must_fit_the_network(hrnet, mobilenet):
    with pytest.raises(ValueError, match="multiples of 32.*e.g. 96x64"):
        hrnet(torch.randn(1, 3, 64, 80))
    assert build_model("mobilenet_v2", 3, heatmap_stride=32).size_divisor == 32
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        mobilenet(torch.randn(1, 1, 64, 64))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="heatmap_stride"):
        build_model("mobilenet_v2", 3, heatmap_stride=3)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model("resnet50", 3)
    with pytest.raises(ValueError, match="head kind"):
        build_model("mobilenet_v2", 3, head="offsets")
    with pytest.raises(ValueError, match="width_mult"):
        build_model("hrnet_w18", 3, width_mult=0.5)


def test_fusion_resizes_bilinearly_to_the_first_map():
    a, b = torch.randn(1, 2, 8, 8), torch.randn(1, 3, 4, 4)
    fused = fuse_to_stride4([a, b])
    assert fused.shape == (1, 5, 8, 8)
    assert torch.equal(fused[:, :2], a)
    # bilinear upsampling by 2 (align_corners=False) keeps a constant map constant
    assert torch.allclose(fuse_to_stride4([a, torch.full((1, 1, 4, 4), 3.0)])[:, 2], torch.tensor(3.0))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_fusion_gradients_equal_plain_resizing_and_reach_it_dense(memory_format):
    """dense_grad changes the layout of the gradient that bilinear resizing's backward receives,
    never its values."""
    from h3r.models.backbones import dense_grad

    maps = [torch.randn(2, c, s, s).contiguous(memory_format=memory_format).requires_grad_()
            for c, s in ((4, 8), (3, 4), (5, 2))]
    upstream = torch.randn(2, 12, 8, 8)
    ours = torch.autograd.grad(fuse_to_stride4(maps), maps, upstream)
    plain = torch.cat([maps[0], *(F.interpolate(m, size=(8, 8), mode="bilinear", align_corners=False)
                                  for m in maps[1:])], dim=1)
    for got, want in zip(ours, torch.autograd.grad(plain, maps, upstream)):
        assert torch.allclose(got, want, atol=1e-6)
    seen = []
    x = torch.randn(2, 3, 4, 4).contiguous(memory_format=memory_format).requires_grad_()
    y = dense_grad(x)
    y.register_hook(lambda g: seen.append(g))  # what cat's backward hands over: a strided slice
    torch.cat([y, torch.zeros(2, 1, 4, 4)], dim=1).backward(torch.randn(2, 4, 4, 4))
    assert torch.equal(y, x) and seen[0].shape == x.shape
    assert x.grad.is_contiguous(memory_format=memory_format)


# --- the stride adapter respects the "center" alignment ------------------------------------------

def test_average_pooling_is_the_mean_of_the_covered_cells():
    x = torch.randn(2, 3, 8, 8)
    pooled = resample_to_stride(x, 16)  # 4 stride-4 cells per side
    assert pooled.shape == (2, 3, 2, 2)
    assert torch.allclose(pooled[..., 1, 0], x[..., 4:8, 0:4].mean(dim=(-2, -1)))


@pytest.mark.parametrize("stride", [1, 2])
def test_upsampling_places_cells_by_the_center_alignment(stride):
    # features equal to the stride-4 coordinate u; at stride s cell u' should read u = (u' + 1/2) s/4 - 1/2
    u = torch.arange(8.0).expand(1, 1, 8, 8)
    fine = resample_to_stride(u, stride)[0, 0, 0]
    f = 4 // stride
    u_fine = torch.arange(8.0 * f)
    expected = (u_fine + 0.5) / f - 0.5
    inside = (expected >= 0) & (expected <= 7)  # bilinear clamps beyond the outer centres
    assert torch.allclose(fine[inside], expected[inside])


@pytest.mark.parametrize("stride", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("kind", ["heatmap", "binary"])
def test_the_head_equals_its_layers_on_the_resampled_features(stride, kind):
    # below stride 4 the head projects before upsampling: the same output, fewer channels resized
    head = HeatmapHead(12, 3, kind=kind, proj_channels=5).eval()
    torch.nn.init.normal_(head.layers[3].weight)
    features = torch.randn(2, 12, 8, 8)
    out = head(features, stride)
    reference = head.layers(resample_to_stride(features, stride))
    assert out.shape[-2:] == reference.shape[-2:] == (32 // stride, 32 // stride)
    assert torch.allclose(out.reshape(reference.shape), reference, atol=1e-5)


# --- the binary head ------------------------------------------------------------------------------

def test_binary_head_views_channels_as_the_official_code():
    head = HeatmapHead(6, 4, kind="binary").eval()
    x = torch.randn(2, 6, 3, 5)
    raw = head.layers(x)  # (N, 2K, H, W): background maps 0..K-1, then foreground K..2K-1
    out = head(x)
    assert out.shape == (2, 2, 4, 3, 5)
    assert torch.equal(out[:, 0, 2], raw[:, 2]) and torch.equal(out[:, 1, 2], raw[:, 4 + 2])
    assert torch.equal(binary_scores(out, "foreground"), raw[:, 4:])
    assert torch.equal(binary_scores(out, "log_odds"), raw[:, 4:] - raw[:, :4])
    # log-odds are the logit of the two-class softmax's foreground probability
    p = out.softmax(dim=1)[:, 1]
    assert torch.allclose(torch.sigmoid(binary_scores(out, "log_odds")), p, atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        binary_scores(out, "softmax")
    with pytest.raises(ValueError, match=r"\(N, 2, K, H, W\)"):
        binary_scores(raw, "foreground")


def test_head_matches_the_official_block():
    head = HeatmapHead(10, 3, kind="binary", proj_channels=8)
    convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(8, 10, 1, 1), (6, 8, 1, 1)]
    assert all(c.bias is None for c in convs)
    assert count_params(head) == 10 * 8 + 2 * 8 + 8 * 6


# --- precision and memory format ------------------------------------------------------------------

@pytest.mark.parametrize("backbone, width_mult, side", [
    pytest.param("hrnet_w18", 1.0, 64, marks=pytest.mark.slow), ("mobilenet_v2", 0.35, 32)])
def test_channels_last_and_bf16_autocast(backbone, width_mult, side):
    # training mode: BatchNorm normalises by batch statistics, so a fresh network's outputs are O(1)
    # (the input keeps >= 2x2 cells at stride 32: batch statistics of 2 values are ill-conditioned)
    model = build_model(backbone, 4, head="binary", width_mult=width_mult).train()
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        reference = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        assert torch.allclose(model_cl(x.contiguous(memory_format=torch.channels_last)), reference,
                              atol=1e-4, rtol=1e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == reference.shape and torch.isfinite(out).all()
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) == len(list(model.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)


# --- pretrained backbones: local files only -------------------------------------------------------

def test_pretrained_loads_a_torchvision_checkpoint(tmp_path):
    imagenet = torchvision.models.mobilenet_v2()  # stands in for the ImageNet file: same names
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(imagenet.state_dict(), path)
    model = build_model("mobilenet_v2", 3, pretrained=path)
    assert torch.equal(model.backbone.features[13].conv[2].weight, imagenet.features[13].conv[2].weight)
    assert torch.equal(model.backbone.features[0][1].running_var, imagenet.features[0][1].running_var)


@pytest.mark.slow
def test_pretrained_loads_a_timm_checkpoint(tmp_path):
    imagenet = timm.create_model("hrnet_w18", pretrained=False)  # with its classification head
    path = tmp_path / "hrnet_w18.pth"
    torch.save({"state_dict": imagenet.state_dict()}, path)
    model = build_model("hrnet_w18", 3, pretrained=path)
    assert torch.equal(model.backbone.body.stage4[2].fuse_layers[3][0][2][0].weight,
                       imagenet.stage4[2].fuse_layers[3][0][2][0].weight)


def test_pretrained_never_downloads_and_checks_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        build_model("mobilenet_v2", 3, pretrained=tmp_path / "missing.pth")
    with pytest.raises(TypeError, match="path of a local checkpoint"):
        build_model("mobilenet_v2", 3, pretrained=True)
    state = torchvision.models.mobilenet_v2(width_mult=0.5).state_dict()
    torch.save(state, tmp_path / "narrow.pth")
    with pytest.raises(ValueError, match=r"narrow.pth.*wrong shape.*features\.0\.0\.weight"):
        build_model("mobilenet_v2", 3, pretrained=tmp_path / "narrow.pth")


# --- counting: the official README's figures --------------------------------------------------------

@pytest.mark.parametrize("backbone, keypoints, side", [
    pytest.param(*config, marks=[pytest.mark.slow] if config[0] == "hrnet_w18" else [])
    for config in REPORTED])
def test_params_and_flops_match_the_reported_figures(backbone, keypoints, side):
    """Params to the README's two decimals. FLOPs: our MACs count convolutions only; thop (the
    README) also counts 2 ops per BatchNorm output.

    Tolerance: our figure lies at most 6% below the README's: thop's BatchNorm term is 0.8% of
    HRNet-W18's count and 3.4% of MobileNetV2's, and the README rounds to 0.01 G (up to 4% at
    0.12 G). With the BatchNorm term added back the README's two decimals are reproduced exactly.
    """
    reported_params, reported_gmacs = REPORTED[backbone, keypoints, side]
    model = build_model(backbone, keypoints, head="binary")
    assert round(count_params(model) / 1e6, 2) == reported_params
    macs = count_flops(model, (side, side))
    assert 0.94 * reported_gmacs <= macs / 1e9 <= reported_gmacs
    assert round(count_flops(model, (side, side), count_batchnorm=True) / 1e9, 2) == reported_gmacs


def test_flops_of_the_head_by_hand():
    model = build_model("mobilenet_v2", 10, head="heatmap", heatmap_stride=8)
    head_macs = (152 * 152 + 152 * 10) * 16 * 16  # two 1x1 convs on the 16x16 stride-8 map
    backbone_macs = count_flops(build_model("mobilenet_v2", 10, heatmap_stride=4), (128, 128)) \
        - (152 * 152 + 152 * 10) * 32 * 32
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model.eval()(x)
        assert count_flops(model.train(), (128, 128)) == backbone_macs + head_macs
        assert model.training  # counting leaves the model as it was
        assert torch.equal(model.eval()(x), before)


# --- the heads of the codecs that are not heatmaps -----------------------------------------------

def test_every_head_kind_is_built_from_the_registry():
    from h3r.config import HEADS
    from h3r.models.heads import HEAD_CLASSES

    assert set(HEAD_CLASSES) == set(HEADS)
    for kind in HEADS:
        model = build_model("plain_cnn", 3, head=kind, width_mult=0.25, input_size=32)
        assert model.head_kind == kind and isinstance(model.head, HEAD_CLASSES[kind])
    with pytest.raises(ValueError, match="head kind must be one of"):
        build_model("plain_cnn", 3, head="mesh")


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_simcc_head_outputs_per_axis_logits_and_learns(stride):
    from h3r.codecs import build_codec
    from h3r.losses import simcc_kl
    from h3r.models import SimCCHead

    model = build_model("plain_cnn", 3, head="simcc", heatmap_stride=stride, width_mult=0.25, input_size=(64, 32),
                        split_ratio=1.5)
    x, y = model(torch.randn(2, 3, 32, 64))
    assert x.shape == (2, 3, 96) and y.shape == (2, 3, 48) and model.head_kind == "simcc"
    head = model.head
    assert isinstance(head, SimCCHead) and head.x.in_features == (64 // stride) * (32 // stride)
    codec = build_codec("simcc-random", (64, 32), stride=stride, split_ratio=1.5)
    target = codec.encode(torch.rand(2, 3, 2) * torch.tensor([63.0, 31.0]))
    simcc_kl((x, y), target).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in (head.x.weight, head.y.weight))
    assert next(model.backbone.parameters()).grad.abs().sum() > 0  # through the maps into the backbone
    # and it learns: Adam on one batch of targets drives its loss down
    torch.manual_seed(0)
    images, target = torch.randn(4, 3, 32, 64), codec.encode(torch.rand(4, 3, 2) * torch.tensor([63.0, 31.0]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = simcc_kl(model(images), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    with pytest.raises(ValueError, match="built for 64x32 inputs"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="pass input_size"):
        build_model("plain_cnn", 3, head="simcc")
    with pytest.raises(ValueError, match="split_ratio"):
        build_model("plain_cnn", 3, head="simcc", input_size=64, split_ratio=0)


def test_regression_head_pools_regresses_and_holds_the_rle_flow():
    from h3r.codecs import build_codec
    from h3r.losses import RealNVP, build_loss
    from h3r.models import RegressionHead

    model = build_model("plain_cnn", 5, head="regression", width_mult=0.25)
    out = model(torch.randn(2, 3, 32, 48))
    assert out.shape == (2, 5, 4) and model.head_kind == "regression"
    assert isinstance(model.head, RegressionHead) and isinstance(model.loss_modules["flow"], RealNVP)
    assert set(model.state_dict()) >= {"head.flow.s.0.0.weight", "head.flow.mask"}  # saved with the network
    loss = build_loss("rle", **model.loss_modules)
    codec = build_codec("rle", (48, 32), stride=4)
    loss(out, codec.encode(torch.rand(2, 5, 2) * 30)).backward()
    assert model.head.fc.weight.grad.abs().sum() > 0 and model.head.flow.s[0][0].weight.grad.abs().sum() > 0
    assert build_model("plain_cnn", 5, width_mult=0.25).loss_modules == {}


@pytest.mark.parametrize("head", ["simcc", "regression"])
def test_the_new_heads_are_counted_and_autocast(head):
    from h3r.models import to_float

    model = build_model("plain_cnn", 3, head=head, width_mult=0.25, input_size=32)
    assert count_flops(model, 32) > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 3, 32, 32))
    floats = to_float(out)
    assert all(t.dtype == torch.float32 for t in (floats if isinstance(floats, tuple) else (floats,)))
