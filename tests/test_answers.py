"""Chapter 13, H3R and the other answers: the runs on one resolution axis (h3r.study), the Pareto
front (h3r.stats), the tables, answer and findings rows (h3r.report) and the figure (h3r.viz)."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from h3r import stats, viz
from h3r.config import Config
from h3r.stats import without_terms
from h3r.study import answers, findings, resolution

NAN = float("nan")


def answer_rows(nme: dict[tuple[str, float], list[float]], head_macs: dict[tuple[str, float], float]) -> pd.DataFrame:
    """Rows as :func:`h3r.study.answers.answers_study` gives them: (method, resolution) -> NME per seed."""
    rows = []
    for (method, bins), values in nme.items():
        for seed, value in enumerate(values):
            stride = int(bins) if bins == bins and bins >= 1 else 4
            cfg = Config(preset=method.split(" on ")[-1], heatmap_stride=stride, input_size=64, seed=seed)
            rows.append({"method": method, "resolution": bins, "seed": seed, "NME (%)": value,
                         "params": 1000, "macs": 10_000 + head_macs[method, bins],
                         "head MACs": head_macs[method, bins], "config": cfg,
                         "decoder_only": " on " in method})
    return pd.DataFrame(rows)


H3R_MACS = {("h3r", 2.0): 4000.0, ("h3r", 4.0): 1000.0, ("h3r", 8.0): 250.0}


def test_pareto_front_keeps_the_points_no_other_beats_in_both():
    front = stats.pareto_front([1, 2, 3, 3, NAN], [5.0, 4.0, 4.0, 1.0, 0.5])
    assert front == [True, True, False, True, False]  # (3, 4) is beaten by (2, 4); NaN is never on it
    assert stats.pareto_front([1, 1], [2.0, 2.0]) == [True, True]  # ties beat nobody
    # within the machines' spread two values are a tie: the cheaper point wins, whichever is lower
    assert stats.pareto_front([1, 2], [10.00, 9.95], spread=0.01) == [True, False]
    assert stats.pareto_front([1, 2], [9.95, 10.00], spread=0.01) == [True, False]
    assert stats.pareto_front([1, 2], [10.0, 9.0], spread=0.01) == [True, True]


def test_a_ranking_word_needs_a_margin_wider_than_the_machines_spread():
    values = pd.Series({"a": 64.64, "b": 64.90, "c": 70.0})
    assert stats.apart(64.64, 70.0) and not stats.apart(64.64, 64.90)
    assert stats.lowest(values) == ["a", "b"] and stats.lowest(values, spread=0.001) == ["a"]
    assert stats.lowest_text(values) == "`a` (64.64 %) and `b` (64.90 %), too close to rank"
    assert stats.lowest_text(values.drop("b"), name="**{}**") == "**a**, 64.64 %"


def test_stride_verdicts_name_their_unit():
    assert stats.stride_verdicts({4.0: "supported", 8.0: "supported"}, unit="bin width") == \
        "supported at every bin width"
    assert stats.stride_verdicts({4.0: "not shown", 8.0: "supported"}, unit="bin width") == \
        "within noise at bin width 4; supported at bin width 8"


def test_simcc_rounding_differences_pair_the_pair_per_bin_width():
    rows = answer_rows({("simcc-round", 4.0): [10.0, 11.0, 12.0], ("simcc-random", 4.0): [9.0, 10.1, 10.9],
                        ("simcc-round", 8.0): [20.0, 21.0, 22.0], ("simcc-random", 8.0): [21.0, 19.0, 23.5]},
                       {("simcc-round", 4.0): 900.0, ("simcc-random", 4.0): 900.0,
                        ("simcc-round", 8.0): 450.0, ("simcc-random", 8.0): 450.0})
    diffs = answers.simcc_rounding_differences(rows).set_index("resolution")
    assert diffs.loc[4.0, "mean"] == pytest.approx(-1.0) and diffs.loc[4.0, "verdict"] == "supported"
    assert diffs.loc[8.0, "verdict"] == "not shown" and list(diffs.n) == [3, 3]
    assert answers.simcc_rounding_differences(rows[rows.method != "simcc-random"]).empty
    table = answers.simcc_rounding_table(diffs.reset_index())
    assert list(table["bin width"]) == ["4 px", "8 px"] and list(table.verdict) == ["supported", "within noise"]


def test_versus_nearest_cost_pairs_each_method_with_h3r_at_the_nearest_head_macs():
    nme = {("h3r", 2.0): [5.0, 5.1, 5.2], ("h3r", 4.0): [6.0, 6.1, 6.2], ("h3r", 8.0): [8.0, 8.1, 8.2],
           ("simcc-round", 4.0): [7.0, 7.2, 7.4],   # costs 1100: h3r at 4 is nearest; H3R better
           ("rle", NAN): [4.0, 4.1, 4.2],           # costs 20: h3r at 8 is nearest; H3R worse
           ("local-soft-argmax on dark", 8.0): [9.0, 9.1, 9.2]}
    macs = {**H3R_MACS, ("simcc-round", 4.0): 1100.0, ("rle", NAN): 20.0, ("local-soft-argmax on dark", 8.0): 250.0}
    rows = answer_rows(nme, macs)
    degenerate = pd.DataFrame({"method": ["local-soft-argmax on dark"], "heatmap_stride": [8],
                               "reason": ["a window covers the map"]})
    versus = answers.versus_nearest_cost(rows, degenerate)
    by = versus.set_index("method")
    assert by.loc["simcc-round", "h3r stride"] == 4.0 and by.loc["simcc-round", "mean"] == pytest.approx(-1.1)
    assert by.loc["simcc-round", "reads"] == "H3R better"
    assert by.loc["rle", "h3r stride"] == 8.0 and by.loc["rle", "reads"] == "H3R worse"
    assert math.isnan(by.loc["rle", "resolution"])
    assert by.loc["local-soft-argmax on dark", "verdict"] == "degenerate"
    table = answers.versus_table(versus)
    assert list(table["px per cell or bin"]) == ["4 px", "free", "8 px"]
    assert table.reads.iloc[2] == "degenerate †" and table["head MACs, H3R / it"].iloc[1] == "12.50"


def test_answers_summary_marks_the_pareto_front_and_the_answer_names_it():
    nme = {("h3r", 2.0): [5.0, 5.2], ("h3r", 4.0): [6.0, 6.2], ("h3r", 8.0): [8.0, 8.2],
           ("simcc-round", 4.0): [7.0, 7.4], ("rle", NAN): [9.0, 9.2]}
    macs = {**H3R_MACS, ("simcc-round", 4.0): 1100.0, ("rle", NAN): 20.0}
    rows = answer_rows(nme, macs)
    summary = answers.answers_summary(rows)
    front = summary[summary.pareto]
    assert set(zip(front.method, front.resolution.fillna(-1))) == {("h3r", 2.0), ("h3r", 4.0), ("h3r", 8.0),
                                                                  ("rle", -1)}
    assert summary.set_index("method").loc["simcc-round", "NME"] == pytest.approx(7.2)
    table = answers.answers_table(summary)
    assert list(table.Pareto) == ["✓", "✓", "✓", "", "✓"] and table["NME (%)"].iloc[0] == "5.10 ± 0.14"
    answer = answers.answers_answer(pd.DataFrame(), answers.versus_nearest_cost(rows), summary)
    # two seeds: -1.0 and -1.2 against simcc-round leave 0 inside the interval; RLE's -1.0 twice does not
    assert "each of the 2 other methods and resolutions" in answer and "H3R better 1, within noise 1." in answer
    assert "H3R worse" not in answer
    assert answer.splitlines()[-1].startswith("* **On the Pareto front**") and "`rle` (free, 9.10 %)" in answer


def test_answers_findings_grade_h3r_against_the_others_and_leave_chapter_5s_baselines_out():
    versus = pd.DataFrame({"method": ["argmax-round", "simcc", "rle", "dsnt"], "resolution": [4.0, 0.5, NAN, NAN],
                           "mean": [-1.0, -0.5, 0.4, -0.2], "low": [-1.5, -0.9, 0.1, -0.6],
                           "high": [-0.5, -0.1, 0.7, 0.2],
                           "verdict": ["supported", "supported", "contradicted", "not shown"],
                           "reads": ["H3R better", "H3R better", "H3R worse", "within noise"],
                           "treatment_mean": 9.0, "control_mean": [10.0, 9.5, 8.6, 9.2]})
    simcc = pd.DataFrame({"resolution": [4.0, 8.0], "mean": [-0.3, -1.0], "low": [-0.8, -1.5],
                          "high": [0.2, -0.5], "verdict": ["not shown", "supported"], "treatment_mean": 9.0,
                          "control_mean": [9.3, 10.0]})
    rounding, others = answers.answers_findings(simcc, versus)
    assert rounding[3] == "within noise at bin width 4; supported at bin width 8"
    assert "8 px bins: -1.00" in without_terms(rounding[2])
    assert others[3] == "mixed: H3R better 1 of 3, H3R worse 1 of 3, within noise 1 of 3"
    assert "argmax-round" not in others[2]
    (_, all_better) = answers.answers_findings(simcc, versus.assign(verdict="supported", reads="H3R better"))
    assert all_better[3] == "supported against every one"
    (_, all_noise) = answers.answers_findings(simcc, versus.assign(verdict="not shown", reads="within noise"))
    assert all_noise[3] == "within noise against every one"


def test_findings_carry_chapter_13s_rows():
    versus = pd.DataFrame({"method": ["rle"], "resolution": [NAN], "mean": [0.4], "low": [0.1], "high": [0.7],
                           "verdict": ["contradicted"], "reads": ["H3R worse"], "treatment_mean": [9.0],
                           "control_mean": [8.6]})
    simcc = pd.DataFrame({"resolution": [4.0], "mean": [-1.0], "low": [-1.5], "high": [-0.5],
                          "verdict": ["supported"], "treatment_mean": [9.0], "control_mean": [10.0]})
    rows = answer_rows({("h3r", 4.0): [5.0, 5.5], ("onehot-round", 4.0): [6.0, 6.5]},
                       {("h3r", 4.0): 1.0, ("onehot-round", 4.0): 1.0})
    rows = rows.assign(heatmap_stride=4, preset=rows.method, decoder_only=False)
    table = findings.findings(rows, None, None, {"round_per_stride": 0.383, "floor_over_round": 2.0, "mean_error": 0.001,
                                               "noise": 0.01, "lossless": 0.0, "stride": 4, "draws": 64},
                            answers=(simcc, versus))
    ours = table[table.evidence.str.contains("13_other_answers")]
    assert list(ours.verdict) == ["supported at every bin width", "contradicted against every one"]


def test_resolution_of_reads_strides_bins_and_resolution_free_methods():
    cfg = Config(input_size=64)
    assert answers.resolution_of(dataclasses.replace(cfg, preset="h3r", heatmap_stride=8)) == 8.0
    assert answers.resolution_of(dataclasses.replace(cfg, preset="simcc-round", codec_args={"split_ratio": 0.125})) == 8.0
    assert answers.resolution_of(dataclasses.replace(cfg, preset="simcc")) == 0.5
    for free in ("rle", "soft-argmax", "dsnt"):
        assert math.isnan(answers.resolution_of(dataclasses.replace(cfg, preset=free)))


def test_degenerate_cells_flag_dark_on_a_4x4_map_and_no_other_head():
    methods = ["dark", "local-soft-argmax on dark", "simcc-round", "simcc", "rle", "soft-argmax", "dsnt"]
    flagged = resolution.degenerate_cells(methods, [4, 16], 64, sigma=1.0)
    assert list(flagged.method) == ["dark"] and list(flagged.heatmap_stride) == [16]
    assert "4×4" in flagged.reason.iloc[0]


def test_decode_microseconds_time_the_decoder_a_row_names():
    cfg = Config(preset="dark", backbone="plain_cnn", width_mult=0.5, input_size=32, device="cpu")
    for method in ("dark", "local-soft-argmax on dark"):
        assert 0 < answers.decode_microseconds(cfg, method, batch=2, sigma=1.0, min_seconds=0.01) < 1e6


def test_answers_runs_read_chapter_13s_settings(monkeypatch):
    calls = []
    monkeypatch.setattr(answers, "answers_study", lambda *a, **k: calls.append((a, k)) or "rows")
    searched = []
    monkeypatch.setattr("h3r.study.search.search_study", lambda *a, **k: searched.append((a, k)) or "search")
    monkeypatch.setattr("h3r.study.search.choose", lambda search: "choices")
    monkeypatch.setattr("h3r.study.search.tuned_settings", lambda choices: {"h3r": {"lr": 0.5}})
    from h3r.profiles import chapter

    assert answers.answers_runs(chapter("other_answers", "smoke", seeds=[3])) == "rows"
    (base, strides, seeds), kwargs = calls[0]
    assert (strides, seeds, kwargs) == ([4, 8], [3], dict(sigma=1.0, force=False, tuned={"h3r": {"lr": 0.5}}))
    (search_base, learning_rates, sigma), _ = searched[0]
    assert search_base == base and learning_rates == chapter("other_answers", "smoke").learning_rates
    assert base == chapter("heatmap_resolution", "smoke").base  # chapter 5's runs, the same keys


def test_answers_figure_draws_each_method_and_the_front_with_the_legend_below():
    from h3r.viz import answers_figure

    rows = answer_rows({("h3r", 4.0): [5.0, 5.2], ("h3r", 8.0): [8.0, 8.2], ("rle", NAN): [9.0, 9.2]},
                       {("h3r", 4.0): 1000.0, ("h3r", 8.0): 250.0, ("rle", NAN): 20.0})
    fig = answers_figure(answers.answers_summary(rows))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["Pareto front", "h3r", "rle"] and ax.get_xscale() == "log"
    front = [line for line in ax.get_lines() if line.get_label() == "Pareto front"][0]
    assert list(front.get_xdata()) == [0.00002, 0.00025, 0.001]
    assert ax.get_legend().get_bbox_to_anchor().y0 < ax.bbox.y0  # below the axes: it covers no data
    assert sorted(t.get_text() for t in ax.texts) == ["4", "8"]  # resolutions labelled, RLE's free
    assert not viz.readability_problems(fig)  # labels of at least 8 pt, the legend over no point
