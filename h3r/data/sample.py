"""What every h3r dataset returns, and the image normalisation they share.

``dataset[i]`` is a dict (``torch.utils.data.default_collate`` batches it):

``image``           float32 (3, H, W), RGB normalised by ImageNet mean and std
``keypoints``       float32 (K, 2) in the crop's input pixels (see :mod:`h3r.geometry`)
``visible``         float32 (K,), 1 where the keypoint is annotated as visible, else 0
``keypoints_orig``  float32 (K, 2) in original-image pixels (metrics are computed there)
``affine``          float64 (2, 3) map from original-image pixels to crop pixels
``normalizer``      float32 () the protocol's normalising distance in original-image pixels
``index``           int, the sample's position in the dataset

Datasets expose ``layout`` (:class:`h3r.data.layouts.Layout`), ``input_size`` ``(width, height)``
and ``name``; those with test subsets (WFLW's pose, 300W's challenging, ...) add a ``subsets``
dict of bool tensors (K-independent, one flag per sample) to each sample.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_image(image: np.ndarray) -> Tensor:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W) normalised by ImageNet mean and std."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image of shape (H, W, 3), got {image.dtype} {image.shape}")
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def normalize_images(images: Tensor) -> Tensor:
    """Batched :func:`normalize_image`: uint8 RGB (N, H, W, 3) -> float32 (N, 3, H, W), whose
    memory is channels_last (the (N, H, W, 3) layout, permuted: no copy). One fused multiply-add
    per element."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images of shape (N, H, W, 3), got {images.dtype} {tuple(images.shape)}")
    scale = 1 / (255 * torch.tensor(IMAGENET_STD))
    shift = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
    return torch.addcmul(shift, images.float(), scale).permute(0, 3, 1, 2)


def denormalize_image(image: Tensor) -> np.ndarray:
    """Inverse of :func:`normalize_image`, for display: (3, H, W) -> uint8 (H, W, 3)."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    x = (image.detach().float().cpu() * std + mean).clamp(0, 1)
    return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
