"""Backbones as H3R uses them: an image (N, 3, H, W) -> one feature map (N, C, H/4, W/4).

Both networks end as the official H3R code ends them (``torchalign/backbone``): the outputs at
strides 4, 8, 16 (and 32) are resized bilinearly (``align_corners=False``) to the stride-4 map
and concatenated along channels.

``hrnet_w18``     timm's HRNetV2-W18, the four branches of stage 4: 18 + 36 + 72 + 144 = 270
                  channels (``hrnet_w32``: 32 + 64 + 128 + 256 = 480, the official LaPa W32 model).
``mobilenet_v2``  torchvision's MobileNetV2 cut after its 14th block: ``features[:4]`` (stride 4,
                  24 channels), ``features[4:7]`` (stride 8, 32), ``features[7:14]`` (stride 16,
                  96): 152 channels at width 1.0; the rest of the network is not built.
``plain_cnn``     not the paper's: four stages of 3x3 conv-BN-ReLU at strides 2, 4, 8, 16 (widths
                  16, 32, 48, 64 times ``width_mult``, depths 1, 2, 2, 2), the last three fused: 144
                  channels. The ``cpu`` profile's network, chosen for CPU speed: on one core it
                  trains faster per image than MobileNetV2 x0.5 and learns much faster.

Weights are never downloaded: ``pretrained`` is the path of a local ImageNet checkpoint in the
library's own naming (timm's ``hrnet_w18`` file, torchvision's ``mobilenet_v2`` file; ``.pth``,
``.pt``, ``.bin`` or ``.safetensors``). Its classification head, which these backbones drop, is
ignored; any other missing, extra or mis-shaped tensor is an error.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def fuse_to_stride4(features: Sequence[Tensor]) -> Tensor:
    """Resize maps (N, C_i, H_i, W_i) to the first one's size and concatenate: (N, sum C_i, H_0, W_0)."""
    size = features[0].shape[-2:]
    resized = [dense_grad(F.interpolate(f, size=size, mode="bilinear", align_corners=False)) for f in features[1:]]
    return torch.cat([features[0], *resized], dim=1)


class _DenseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous(memory_format=torch.channels_last if ctx.channels_last else torch.contiguous_format)


def dense_grad(x: Tensor) -> Tensor:
    """``x`` itself, whose gradient is made dense in ``x``'s memory format on the way back.

    ``torch.cat``'s backward hands each input a strided slice of the output's gradient, and the
    CPU backward of bilinear resizing takes its vectorised kernel only for a dense gradient in the
    format of its output; the values are unchanged."""
    return _DenseGrad.apply(x)


class HRNet(nn.Module):
    """HRNetV2 (timm): stage-4 branches at strides 4, 8, 16, 32, fused at stride 4.

    ``out_channels``: 270 for ``hrnet_w18``. Input sides must be multiples of ``size_divisor``
    (32) so that the branches line up in HRNet's fusion layers.
    """

    size_divisor = 32
    #: checkpoint tensors of timm's classification model that this backbone does not build
    unused_prefixes = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")

    def __init__(self, name: str = "hrnet_w18"):
        import timm  # imported here, so that the processes of networks without timm never load it

        super().__init__()
        self.body = timm.create_model(name, features_only=True, feature_location="",
                                      out_indices=(1, 2, 3, 4), pretrained=False)
        self.out_channels = sum(self.body.feature_info.channels())

    def forward(self, image: Tensor) -> Tensor:
        return fuse_to_stride4(self.body(image))

    def checkpoint_target(self) -> nn.Module:
        """The module whose state-dict names an ImageNet checkpoint uses."""
        return self.body


class MobileNetV2(nn.Module):
    """MobileNetV2 (torchvision) truncated as in the official H3R code, fused at stride 4.

    ``features`` keeps torchvision's indices 0-13, so torchvision checkpoints load by name.
    ``out_channels``: 152 at ``width_mult=1.0``.
    """

    size_divisor = 16
    #: outputs of these blocks are fused: strides 4, 8, 16
    taps = (3, 6, 13)
    unused_prefixes = tuple(f"features.{i}." for i in range(14, 19)) + ("classifier.",)

    def __init__(self, width_mult: float = 1.0):
        import torchvision

        super().__init__()
        full = torchvision.models.mobilenet_v2(weights=None, width_mult=width_mult)
        self.features = full.features[: self.taps[-1] + 1]
        self.out_channels = sum(self.features[i].out_channels for i in self.taps)

    def forward(self, image: Tensor) -> Tensor:
        x, outputs = image, []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.taps:
                outputs.append(x)
        return fuse_to_stride4(outputs)

    def checkpoint_target(self) -> nn.Module:
        return self


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (padding 1, no bias), BatchNorm, ReLU: (N, C_in, H, W) -> (N, C_out, H/s, W/s)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class PlainCNN(nn.Module):
    """Four stages of :func:`conv_bn_relu`, the first convolution of each at stride 2; the outputs
    of stages 2-4 (strides 4, 8, 16) fused at stride 4.

    ``widths`` and ``depths`` (convolutions) per stage; ``out_channels = sum(widths[1:])``, 144 by
    default. No ImageNet checkpoint exists for it: it trains from scratch.
    """

    size_divisor = 16
    unused_prefixes = ()

    def __init__(self, widths: Sequence[int] = (16, 32, 48, 64), depths: Sequence[int] = (1, 2, 2, 2)):
        super().__init__()
        stages, channels = [], 3
        for width, depth in zip(widths, depths, strict=True):
            stages.append(nn.Sequential(conv_bn_relu(channels, width, 2),
                                        *(conv_bn_relu(width, width) for _ in range(depth - 1))))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.out_channels = sum(widths[1:])

    def forward(self, image: Tensor) -> Tensor:
        x, outputs = image, []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return fuse_to_stride4(outputs[1:])

    def checkpoint_target(self) -> nn.Module:
        return self


BACKBONES = {
    "hrnet_w18": lambda width_mult: HRNet("hrnet_w18"),
    "hrnet_w32": lambda width_mult: HRNet("hrnet_w32"),
    "mobilenet_v2": lambda width_mult: MobileNetV2(width_mult),
    "plain_cnn": lambda width_mult: PlainCNN([round(w * width_mult) for w in (16, 32, 48, 64)]),
}


def build_backbone(name: str, width_mult: float = 1.0, pretrained: str | Path | None = None) -> nn.Module:
    """A backbone by name (see :data:`BACKBONES`), optionally loading a local ImageNet checkpoint.

    ``width_mult`` applies to MobileNetV2 and the plain CNN; other values raise for HRNet.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    if name.startswith("hrnet") and width_mult != 1.0:
        raise ValueError(f"width_mult={width_mult} applies to mobilenet_v2 only; {name} has fixed widths")
    backbone = BACKBONES[name](width_mult)
    if pretrained is not None:
        if isinstance(pretrained, bool):
            raise TypeError("pretrained must be the path of a local checkpoint file (h3r never "
                            f"downloads weights), got {pretrained!r}")
        target = backbone.checkpoint_target()
        given = read_state_dict(pretrained)
        given = {k: v for k, v in given.items() if not k.startswith(backbone.unused_prefixes)}
        target.load_state_dict(match_state_dict(given, target.state_dict(), pretrained))
    return backbone


# --- checkpoint files -----------------------------------------------------------------------

def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``path`` without running any pickled code.

    Accepts a plain state dict or one nested under ``"state_dict"`` or ``"model"``. Raises
    FileNotFoundError for a missing file and ValueError for one that is not a readable checkpoint
    (truncated, corrupt, not a PyTorch/safetensors file, or holding something else than tensors).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass the path of a local file "
                                "(h3r never downloads weights)")
    safetensors = path.suffix == ".safetensors"
    with open(path, "rb") as f:
        head = f.read(8)
    if not safetensors and not head.startswith((b"PK", b"\x80")):  # torch.save: zip, or legacy pickle
        raise ValueError(f"{path} is not a PyTorch checkpoint (torch.save writes a zip or pickle file; "
                         f"this one starts with {head!r})")
    try:
        if safetensors:
            from safetensors.torch import load_file
            obj = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch/safetensors raise several types for a bad file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path} cannot be read as a checkpoint ({reason}); the file is truncated or "
                         "corrupt: download it again") from err
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict (a mapping from "
                         "parameter names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path} is not a state dict: entries {_first(bad)} are not tensors")
    return dict(obj)


def match_state_dict(given: Mapping[str, Tensor], expected: Mapping[str, Tensor], source: str | Path,
                     file_key: Callable[[str], str] = str) -> dict[str, Tensor]:
    """Check ``given`` against a module's ``expected`` state dict: same names, same shapes.

    BatchNorm's ``num_batches_tracked`` counters may be absent (old checkpoints lack them; they do
    not affect the forward pass) and are then set to 0. Raises ValueError naming ``source`` (the
    file), the first offending keys as the file spells them (``file_key`` maps a model key to that
    spelling) and what was expected.
    """
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = [file_key(k) for k in expected if k not in given and k not in optional]
    extra = [file_key(k) for k in given if k not in expected]
    wrong = [k for k in expected if k in given and given[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors, e.g. {_first(missing)}")
    if extra:
        problems.append(f"{len(extra)} unexpected tensors, e.g. {_first(extra)}")
    if wrong:
        problems.append(f"{len(wrong)} tensors of the wrong shape, e.g. " + ", ".join(
            f"{file_key(k)!r}: {tuple(given[k].shape)} where {tuple(expected[k].shape)} is expected"
            for k in wrong[:3]))
    if problems:
        raise ValueError(f"{source} does not match the model: " + "; ".join(problems)
                         + ". Is it the checkpoint of this architecture and keypoint count?")
    out = dict(given)
    for k in optional:
        out.setdefault(k, torch.zeros_like(expected[k]))
    return out


def _first(keys: Sequence[str], n: int = 3) -> str:
    return ", ".join(repr(k) for k in keys[:n]) + (", ..." if len(keys) > n else "")
