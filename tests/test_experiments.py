"""Run grids and the tables the book makes of them."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from h3r import train as T
from h3r.experiments import (GROWTH_RULE, MECHANISM_RULE, benchmark_config, benchmark_status, grid, growth_verdict,
                             longest_first, mean_spread, mechanism_verdict, paired_differences, run_grid,
                             run_variants, verdict)


def tiny(tmp_path, **overrides) -> T.Config:
    values = dict(dataset="synthetic_faces", input_size=32, train_samples=32, test_samples=16, batch_size=16,
                  epochs=1, backbone="mobilenet_v2", width_mult=0.5, lr=2e-3, workers=0, progress=False,
                  out_dir=str(tmp_path / "runs"))
    return T.Config(**{**values, **overrides})


def test_grid_is_the_product_of_its_axes(tmp_path):
    configs = grid(tiny(tmp_path), codec=["h3r", "dark"], heatmap_stride=[4, 8], seed=[0, 1, 2])
    assert len(configs) == 12 and len({c.key() for c in configs}) == 12
    assert [(c.codec, c.heatmap_stride, c.seed) for c in configs[:3]] == [("h3r", 4, 0), ("h3r", 4, 1), ("h3r", 4, 2)]
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['stride'\]"):
        grid(tiny(tmp_path), stride=[4])


def test_run_grid_rows_carry_their_config_and_say_what_was_cached(tmp_path):
    configs = grid(tiny(tmp_path), codec=["h3r", "argmax-round"])
    rows = run_grid(configs)
    assert list(rows.codec) == ["h3r", "argmax-round"] and not rows.cached.any()
    assert [r.config for r in rows.itertuples()] == configs
    assert {"NME (%)", "FR@0.1 (%)", "AUC@0.1", "commit", "run", "n"} <= set(rows.columns)
    again = run_grid(configs)
    assert again.cached.all() and again["NME (%)"].tolist() == rows["NME (%)"].tolist()
    per_subset = run_grid(configs[:1], subsets=True)
    assert set(per_subset.subset) >= {"all", "pose", "occlusion"}


def test_mean_spread_formats_mean_and_sd_over_seeds():
    rows = pd.DataFrame({"codec": ["a", "a", "a", "b"], "stride": [4, 4, 8, 4], "NME (%)": [1.0, 3.0, 5.0, 2.0]})
    table = mean_spread(rows, "codec", "stride")
    assert table.loc["a", 4] == "2.00 ± 1.41" and table.loc["a", 8] == "5.00" and table.loc["b", 4] == "2.00"
    assert mean_spread(rows, "codec", digits=1).loc["a", "NME (%)"] == "3.0 ± 2.0"


def test_a_benchmark_follows_its_protocol(tmp_path):
    base = tiny(tmp_path)
    cfg = benchmark_config(base, "300w", tmp_path / "data", full_size=True)
    assert (cfg.dataset, cfg.train_split, cfg.test_split, cfg.input_size) == ("300w", "train", "full", 256)
    assert benchmark_config(base, "coco", full_size=True).input_size == (192, 256)
    assert benchmark_config(base, "mpii").input_size == 32  # the small profiles keep their size
    assert benchmark_status("wflw", tmp_path / "nowhere").startswith("needs data (looked for ")


def test_paired_differences_pair_by_seed_and_give_a_t_interval():
    rows = pd.DataFrame({
        "method": ["a", "b"] * 6, "heatmap_stride": [4] * 6 + [8] * 6, "seed": [0, 0, 1, 1, 2, 2] * 2,
        "NME (%)": [5.0, 6.0, 5.5, 6.4, 4.9, 6.1, 7.0, 7.1, 7.2, 6.9, 7.0, 7.3]})
    table = paired_differences(rows, "a", "b").set_index("heatmap_stride")
    assert table.loc[4, "differences"] == [-1.0, -0.9, -1.2] and table.loc[4, "n"] == 3
    assert table.loc[4, "mean"] == pytest.approx(-31 / 30)
    # t(0.975, 2 dof) = 4.3027, s.d. of (-1, -0.9, -1.2) = 0.1528
    assert table.loc[4, "high"] - table.loc[4, "mean"] == pytest.approx(4.3027 * 0.15275 / 3**0.5, rel=1e-3)
    assert verdict(table.loc[4, "low"], table.loc[4, "high"]) == "supported"
    assert verdict(table.loc[8, "low"], table.loc[8, "high"]) == "not shown"
    assert verdict(0.2, 0.5) == "contradicted" and verdict(0.2, 0.5, "higher") == "supported"
    single = paired_differences(rows[rows.seed == 0], "a", "b")
    assert single.n.tolist() == [1, 1] and single.low.isna().all()
    assert verdict(float("nan"), float("nan")) == "not shown"
    with pytest.raises(ValueError, match="rows hold no method='c'"):
        paired_differences(rows, "c", "b")


def test_growth_verdict_grades_the_randomized_codecs_growth_against_vanillas():
    assert growth_verdict(11.18 / 4.45, 4.8) == "partly"  # x2.51: excess 1.51, at most half of 3.8
    assert growth_verdict(1.2, 4.8) == "supported"  # nearly flat
    assert growth_verdict(3.5, 4.8) == "not supported"  # excess 2.5, more than half of 3.8
    assert growth_verdict(1.3, 1.1) == "not supported"  # vanilla barely grows either
    assert "×1.25" in GROWTH_RULE and "0.5 of the deterministic" in GROWTH_RULE


def test_mechanism_verdict_grades_how_close_the_network_comes_to_the_expected_target():
    learned = pd.DataFrame({"heatmap_stride": [2, 4, 8], "mass": [0.72, 0.95, 0.5],
                            "error": [0.123, 0.05, 0.2], "uniform": [0.181, 0.18, 0.18]})
    verdicts = [mechanism_verdict(r.mass, r.error, r.uniform) for r in learned.itertuples()]
    assert verdicts == ["partly", "mostly", "not supported"]
    assert mechanism_verdict(0.85, 0.01, 0.18) == "partly"  # too little mass on the neighbours for "mostly"
    assert "at least 0.9" in MECHANISM_RULE and "0.5 × uniform" in MECHANISM_RULE


@pytest.mark.slow
def test_runs_side_by_side_give_the_numbers_of_runs_in_turn(tmp_path):
    """CPU runs of one thread train two at a time in worker processes (renders first); the
    numbers are those of the same runs trained one after the other in this process."""
    def configs(folder):
        return grid(tiny(tmp_path / folder, threads=1, device="cpu", epochs=2), codec=["h3r", "argmax-round"])

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
    variants = {"one-hot": dict(codec="h3r"), "bilinear": dict(codec="h3r", codec_args={"target": "bilinear"})}
    rows = run_variants(tiny(tmp_path), variants, seeds=[0, 1])
    assert list(zip(rows.variant, rows.seed)) == [("one-hot", 0), ("one-hot", 1), ("bilinear", 0), ("bilinear", 1)]
    assert [c.codec_args for c in rows.config] == [{}, {}, {"target": "bilinear"}, {"target": "bilinear"}]
    assert rows["NME (%)"].nunique() == 4 and not rows.cached.any()
