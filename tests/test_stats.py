"""Statistics of runs: mean and spread, paired differences, graded verdicts by their stated rules."""
from __future__ import annotations

import pandas as pd
import pytest

from h3r.stats import (GROWTH_RULE, MECHANISM_RULE, bounds_text, difference_text, growth_verdict, interval_text,
                       mean_spread, mechanism_verdict, metrics_table, paired_differences, ratio_text, terms_text,
                       verdict, without_terms)


def test_mean_spread_formats_mean_and_sd_over_seeds():
    rows = pd.DataFrame({"codec": ["a", "a", "a", "b"], "stride": [4, 4, 8, 4], "NME (%)": [1.0, 3.0, 5.0, 2.0]})
    table = mean_spread(rows, "codec", "stride")
    assert table.loc["a", 4] == "2.00 ± 1.41" and table.loc["a", 8] == "5.00" and table.loc["b", 4] == "2.00"
    assert mean_spread(rows, "codec", digits=1).loc["a", "NME (%)"] == "3.0 ± 2.0"


def test_paired_differences_pair_by_seed_and_give_a_t_interval():
    rows = pd.DataFrame({
        "method": ["a", "b"] * 6, "heatmap_stride": [4] * 6 + [8] * 6, "seed": [0, 0, 1, 1, 2, 2] * 2,
        "NME (%)": [5.0, 6.0, 5.5, 6.4, 4.9, 6.1, 7.0, 7.1, 7.2, 6.9, 7.0, 7.3]})
    table = paired_differences(rows, "a", "b").set_index("heatmap_stride")
    assert table.loc[4, "differences"] == [-1.0, -0.9, -1.2] and table.loc[4, "n"] == 3
    assert table.loc[4, "mean"] == pytest.approx(-31 / 30)
    assert table.loc[4, "treatment_mean"] == pytest.approx(15.4 / 3)
    assert table.loc[4, "control_mean"] == pytest.approx(18.5 / 3)
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
    # an untrained network splits the mass evenly: its error is the even split's but for rounding,
    # on either side of it from one machine to the next, and is never graded "partly"
    assert mechanism_verdict(0.0625, 0.174910, 0.174912) == "not supported"
    assert mechanism_verdict(0.3, 0.15, 0.18) == "not supported"  # 0.83 of an even split
    assert "at least 0.9" in MECHANISM_RULE and "0.5 × uniform" in MECHANISM_RULE
    assert "partly if the error is at most 0.8 × uniform" in MECHANISM_RULE


def test_metrics_table_puts_each_metric_over_the_columns_side_by_side():
    rows = pd.DataFrame({"codec": ["h3r", "h3r", "argmax", "argmax"], "seed": [0, 1, 0, 0],
                         "subset": ["all", "all", "all", "pose"], "NME (%)": [4.0, 6.0, 5.0, 7.0],
                         "FR@0.1 (%)": [1.0, 1.0, 2.0, 3.0], "AUC@0.1": [0.5, 0.5, 0.4, 0.3]})
    table = metrics_table(rows, "codec", "subset")
    assert list(table.columns) == [("NME (%)", "all"), ("NME (%)", "pose"), ("FR@0.1 (%)", "all"),
                                   ("FR@0.1 (%)", "pose"), ("AUC@0.1", "all"), ("AUC@0.1", "pose")]
    assert table.loc["h3r", ("NME (%)", "all")] == "5.00 ± 1.41"
    assert table.loc["argmax", ("AUC@0.1", "pose")] == "0.30"
    assert pd.isna(table.loc["h3r", ("NME (%)", "pose")])
    assert list(metrics_table(rows, "codec", "subset", metrics=("AUC@0.1",)).columns.levels[0]) == ["AUC@0.1"]


def test_an_interval_of_one_seed_says_there_is_none():
    row = {"mean": -1.5, "low": -2.0, "high": -1.0, "treatment_mean": 62.25, "control_mean": 63.75}
    assert interval_text(row) == '<span title="62.25 − 63.75">-1.50</span> [-2.00, -1.00]'
    assert interval_text({**row, "low": float("nan"), "high": float("nan")}) == \
        '<span title="62.25 − 63.75">-1.50</span> (one seed)'
    assert bounds_text(float("nan"), float("nan")) == "none (one seed)"


def test_a_derived_number_names_its_terms_on_hover():
    """A difference or a ratio of learned numbers moves with its terms, so its text carries them
    (tests/nbval_tolerance.py gives it their tolerance)."""
    assert difference_text(-0.41, 64.22, 64.63) == '<span title="64.22 − 64.63">-0.41</span>'
    assert ratio_text(6.0, 4.0) == '<span title="6.00 / 4.00">×1.50</span>'
    with pytest.raises(ValueError, match="operator"):
        terms_text("1.00", 1.0, 2.0, "+")
    assert without_terms(f"grows {ratio_text(6.0, 4.0)}, {difference_text(-0.41, 64.22, 64.63)} [-1, 0]") == \
        "grows ×1.50, -0.41 [-1, 0]"
