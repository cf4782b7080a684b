"""H3R in your own training loop: encode a batch, take the loss, decode, on a toy face model.

The three pieces, all batched torch on the model's device:

* encode  ``codec.encode(keypoints, visible, generator=g)``: one randomized-rounding draw per
  keypoint, a one-hot map (N, K, Hh, Wh) and weights (N, K) that are 0 for masked keypoints.
  A ``torch.Generator`` on the device makes the draws reproducible.
* loss    ``h3r.losses.spatial_ce(logits, target)``: a softmax over each map's cells,
  cross-entropy against the drawn cell.
* decode  ``codec.decode(logits)``: the top-k cells, softmax-weighted (official: k = 9).

The convention to respect (h3r.geometry): keypoints are in input pixels of the image the model
sees, with pixel centres at integers (OpenCV's; subtract MATLAB's 1 from 1-based annotations),
and decoded points come back in the same pixels. The codec's default, align="center", puts heatmap
cell i at input x = s (i + 1/2) - 1/2 for stride s. The official H3R code (and mmpose's MSRA
codecs) use align="corner", x = s i: build_codec("h3r-official", 64, stride=4) gives that, and a
model trained with one alignment must be decoded with the same one, or its points move by
(s - 1) / 2 px (1.5 px at stride 4).

Trains a small convolutional net for a few seconds on the embedded synthetic faces (64 px, 68
landmarks, heatmaps at stride 4) and prints the test NME before and after. Run
``python examples/own_training_loop.py --help`` for the options.
"""
import argparse

import torch
from torch import nn

from h3r.codecs import H3R
from h3r.data.synthetic import SyntheticFaces
from h3r.losses import spatial_ce
from h3r.metrics import nme


def faces(split: str, n: int, device) -> list[torch.Tensor]:
    """images (n, 3, 64, 64), keypoints (n, 68, 2) in input pixels, normalizers (n,), rendered once."""
    data = SyntheticFaces(split, length=n, input_size=64, seed=0)
    samples = [data[i] for i in range(n)]
    return [torch.stack([s[key] for s in samples]).to(device) for key in ("image", "keypoints", "normalizer")]


def toy_model(k: int = 68, width: int = 32) -> nn.Module:
    """64x64 image -> K logit maps of 16x16 (stride 4); any heatmap network will do."""
    def block(cin, cout, stride=1, dilation=1):
        return [nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*block(3, width // 2, 2), *block(width // 2, width, 2), *block(width, width, 1, 2),
                         *block(width, width, 1, 4), nn.Conv2d(width, k, 1))


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps of 16 faces (default 200)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the model, the batches and the draws")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: a toy this small "
                        "gains little from more, and loses much on a busy machine)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    train, test = faces("train", 256, device), faces("test", 64, device)
    model = toy_model().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    codec = H3R(input_size=64, heatmap_size=16)  # top-9 softmax decoding; align="center" (see above)
    draws = torch.Generator(device).manual_seed(args.seed)  # on the keypoints' device

    def test_nme() -> float:  # percent of the inter-ocular distance
        model.eval()
        with torch.no_grad():
            predicted, _scores = codec.decode(model(test[0]))  # input pixels, like the keypoints
        model.train()
        return 100 * nme(predicted, test[1], test[2]).mean().item()

    print(f"NME {test_nme():.1f} % before training")
    for _ in range(args.steps):
        batch = torch.randint(len(train[0]), (16,), device=device)
        images, keypoints = train[0][batch], train[1][batch]
        target = codec.encode(keypoints, generator=draws)  # a fresh draw every time a face is seen
        loss = spatial_ce(model(images), target)
        # Alternatives, each with its codec and head:
        #   h3r.losses.mse on Gaussian targets (H3R(target="gaussian"), or DARK/UDP): the classic
        #     heatmap regression; decode with that codec.
        #   h3r.losses.binary_ce for the official 2-channel head (build_model(..., head="binary"),
        #     per-cell background/foreground softmax); decode h3r.models.binary_scores(output).
        #   soft targets: codec.expected_target(keypoints) is the mean of the draws (the bilinear
        #     map), deterministic; spatial_ce takes it as is (soft cross-entropy).
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = test_nme()
    print(f"NME {final:.1f} % after {args.steps} steps")
    return final


if __name__ == "__main__":
    main()
