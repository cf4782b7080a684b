"""Grids of runs: the product of axes, runs side by side in a pool, the real benchmarks by protocol."""
from __future__ import annotations

import dataclasses

import pytest

from h3r.config import Config
from h3r.runs import benchmark_config, benchmark_status, grid, longest_first, run_grid, run_variants, same_code


def tiny(tmp_path, **overrides) -> Config:
    values = dict(dataset="synthetic_faces", input_size=32, train_samples=32, test_samples=16, batch_size=16,
                  epochs=1, backbone="mobilenet_v2", width_mult=0.5, lr=2e-3, workers=0, progress=False,
                  out_dir=str(tmp_path / "runs"))
    return Config(**{**values, **overrides})


def test_grid_is_the_product_of_its_axes(tmp_path):
    configs = grid(tiny(tmp_path), preset=["h3r", "dark"], heatmap_stride=[4, 8], seed=[0, 1, 2])
    assert len(configs) == 12 and len({c.key() for c in configs}) == 12
    assert [(c.preset, c.heatmap_stride, c.seed) for c in configs[:3]] == [("h3r", 4, 0), ("h3r", 4, 1), ("h3r", 4, 2)]
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['stride'\]"):
        grid(tiny(tmp_path), stride=[4])


def test_run_grid_rows_carry_their_config_and_say_what_was_cached(tmp_path):
    configs = grid(tiny(tmp_path), preset=["h3r", "argmax-round"])
    rows = run_grid(configs)
    assert list(rows.preset) == ["h3r", "argmax-round"] and not rows.cached.any()
    assert [r.config for r in rows.itertuples()] == configs
    assert {"NME (%)", "FR@0.1 (%)", "AUC@0.1", "commit", "run", "n"} <= set(rows.columns)
    again = run_grid(configs)
    assert again.cached.all() and again["NME (%)"].tolist() == rows["NME (%)"].tolist()
    per_subset = run_grid(configs[:1], subsets=True)
    assert set(per_subset.subset) >= {"all", "pose", "occlusion"}


def test_a_benchmark_follows_its_protocol(tmp_path):
    base = tiny(tmp_path)
    cfg = benchmark_config(base, "300w", tmp_path / "data", full_size=True)
    assert (cfg.dataset, cfg.train_split, cfg.test_split, cfg.input_size) == ("300w", "train", "full", 256)
    assert benchmark_config(base, "coco", full_size=True).input_size == (192, 256)
    assert benchmark_config(base, "mpii").input_size == 32  # the small profiles keep their size
    assert benchmark_status("wflw", tmp_path / "nowhere").startswith("needs data (looked for ")


@pytest.mark.slow
def test_runs_side_by_side_give_the_numbers_of_runs_in_turn(tmp_path):
    """CPU runs of one thread train two at a time in worker processes (renders first); the
    numbers are those of the same runs trained one after the other in this process."""
    def configs(folder):
        return grid(tiny(tmp_path / folder, threads=1, device="cpu", epochs=2), preset=["h3r", "argmax-round"])

    apart = run_grid(configs("apart"), jobs=2)
    in_turn = run_grid(configs("in-turn"), jobs=1)
    assert not apart.cached.any() and apart["NME (%)"].tolist() == in_turn["NME (%)"].tolist()
    assert len(list((tmp_path / "apart" / "runs" / ".render-cache").glob("*.npz"))) == 3  # 2 epochs + test
    assert run_grid(configs("apart"), jobs=2).cached.all()


def test_a_pool_starts_the_longest_runs_first(tmp_path):
    base = tiny(tmp_path)
    configs = grid(base, heatmap_stride=[16, 2, 4], seed=[0, 1]) + [dataclasses.replace(base, input_size=64)]
    order = longest_first(configs)
    assert order[0].input_size == 64  # four times the pixels of the rest
    assert [c.heatmap_stride for c in order[1:]] == [2, 2, 4, 4, 16, 16]  # finer heatmaps cost more
    assert [c.seed for c in order[1:]] == [0, 1] * 3  # ties keep their order
    capped = dataclasses.replace(base, max_steps=1)  # one batch of 16 images, not 32
    assert longest_first([capped, base]) == [base, capped]


def test_run_variants_label_each_run_and_share_one_grid(tmp_path):
    variants = {"one-hot": dict(preset="h3r"), "bilinear": dict(preset="h3r", codec_args={"target": "bilinear"})}
    rows = run_variants(tiny(tmp_path), variants, seeds=[0, 1])
    assert list(zip(rows.variant, rows.seed)) == [("one-hot", 0), ("one-hot", 1), ("bilinear", 0), ("bilinear", 1)]
    assert [c.codec_args for c in rows.config] == [{}, {}, {"target": "bilinear"}, {"target": "bilinear"}]
    assert rows["NME (%)"].nunique() == 4 and not rows.cached.any()


def test_a_worker_that_trained_with_other_code_is_an_error():
    assert same_code("abc", {"key": "abc", "summary": {}}) == {"key": "abc", "summary": {}}
    with pytest.raises(RuntimeError, match="code changed while this grid ran.*run the grid again"):
        same_code("abc", {"key": "def"})
