"""Chapter 14, questions people ask about H3R: the designs (h3r.study.questions), the paired differences
against the paper's choice, how they read, and the page's answer."""
from __future__ import annotations

import pandas as pd
import pytest

from h3r.config import Config
from h3r.stats import without_terms
from h3r.study import questions


def variant_rows(nme: dict[str, list[float]], stride: int = 4) -> pd.DataFrame:
    """Rows as h3r.runs.run_variants gives them: variant -> NME per seed."""
    return pd.DataFrame([{"variant": variant, "seed": seed, "heatmap_stride": stride, "NME (%)": value,
                          "commit": "abc1234"} for variant, values in nme.items() for seed, value in enumerate(values)])


def made_up_rows() -> dict[str, pd.DataFrame]:
    return {
        "draw": variant_rows({questions.PAPER_DRAW: [10.0, 11.0, 12.0],
                              "one draw, fixed per sample": [11.0, 12.1, 12.9],   # +1.0, +1.1, +0.9: higher
                              "expected target, no draw": [9.0, 12.0, 11.5]}),    # -1, +1, -0.5: noise
        "shape": variant_rows({questions.PAPER_TARGET: [5.0, 6.0, 7.0], "Gaussian draw, MSE (chapter 5)": [4.0, 5.1, 5.9]}),
        "imbalance": variant_rows({questions.PAPER_LOSS: [5.0, 6.0, 7.0], "sigmoid BCE": [5.5, 5.0, 8.0]}),
        "decoding": variant_rows({questions.PAPER_DECODER: [5.0, 6.0, 7.0], "top-9 sigmoid weights": [5.0, 6.0, 7.0]}),
    }


def test_differences_pair_each_alternative_with_its_questions_control_and_read_it():
    diffs = questions.differences(made_up_rows()).set_index("alternative")
    assert diffs.loc["one draw, fixed per sample", "mean"] == pytest.approx(1.0)
    assert diffs.loc["one draw, fixed per sample", "reads"] == "higher error than the paper's choice"
    assert diffs.loc["expected target, no draw", "reads"] == "within noise"
    assert diffs.loc["Gaussian draw, MSE (chapter 5)", "reads"] == "lower error than the paper's choice"
    assert diffs.loc["top-9 sigmoid weights", "mean"] == 0 and list(diffs.n) == [3] * 5
    assert set(diffs.question) == set(questions.QUESTIONS)  # no control is ever an alternative of itself
    assert questions.PAPER_DRAW not in diffs.index


def test_numbers_conclusion_and_summary_say_what_the_differences_show():
    diffs = questions.differences(made_up_rows())
    fixed = without_terms(questions.numbers(diffs, "draw", ["one draw, fixed per sample"]))
    assert fixed.startswith("*one draw, fixed per sample*: +1.00 [") and "expected" not in fixed
    assert fixed.endswith("NME points (higher error than the paper's choice)")
    assert questions.conclusion(diffs, "draw") == ("higher error than the paper's choice: *one draw, fixed per "
                                                   "sample*; within noise: *expected target, no draw*")
    summary = questions.summary(diffs).splitlines()
    assert len(summary) <= 3  # one line per reading, the detail below it on the page
    assert summary[0] == ("* **Lower error than the paper's choice**: *Gaussian draw, MSE (chapter 5)* "
                          "(binary or Gaussian).")
    assert summary[1].startswith("* **Higher error than the paper's choice**: *one draw, fixed per sample* "
                                 "(when to draw)")
    table = questions.questions_table(diffs)
    assert list(table.columns) == ["difference [95 % interval]", "seeds", "reads"]
    assert table.index.names == ["question", "alternative"] and len(table) == 5
    assert table.index[0] == ("when to draw", "one draw, fixed per sample")


def test_one_seed_reads_within_noise_and_says_it_has_one_seed():
    rows = {name: frame[frame.seed == 0] for name, frame in made_up_rows().items()}
    diffs = questions.differences(rows)
    assert set(diffs.reads) == {"within noise"}
    assert without_terms(questions.numbers(diffs, "draw", ["one draw, fixed per sample"])) == (
        "*one draw, fixed per sample*: +1.00 NME points (one seed: within noise)")
    assert questions.questions_table(diffs)["difference [95 % interval]"].str.endswith("(one seed)").all()


def test_the_designs_change_only_what_their_question_asks():
    draws = questions.draw_variants()
    assert all(v["fresh_samples"] is False and v["codec"] == "h3r" for v in draws.values())
    assert [v.get("draw", "fresh") for v in draws.values()] == ["fresh", "fixed", "fresh"]
    sigmoid = questions.sigmoid_variants(256)
    assert sigmoid[questions.PAPER_LOSS] == {"codec": "h3r"}
    assert "sigmoid BCE, pos_weight 255 (H·W − 1)" in sigmoid
    for label, changes in sigmoid.items():
        cfg = Config(**changes)
        assert cfg.head == "heatmap"  # one channel: a sigmoid or a spatial softmax over it
        assert cfg.resolved_loss == ("spatial_ce" if label == questions.PAPER_LOSS else "sigmoid_ce")
    assert questions.decoding_variants(256) == {questions.PAPER_DECODER: {}, "softmax over the whole map": {"k": 256},
                                                "top-9 sigmoid weights": {"weighting": "sigmoid"}}


def test_decodings_read_each_run_once_per_decoder(monkeypatch):
    import h3r.runs

    calls = []

    def fake(cfg, decoders):
        calls.append(decoders)
        return [{"summary": {"all": {"NME (%)": 5.0 + i}}} for i, _ in enumerate(decoders)]

    monkeypatch.setattr(h3r.runs, "reevaluate_decoders", fake)
    runs = pd.DataFrame([{"config": Config(seed=s), "seed": s, "heatmap_stride": 4, "commit": "abc"} for s in (0, 1)])
    out = questions.decodings(runs, questions.decoding_variants(256))
    assert len(calls) == 2 and [c[0] for c in calls[0]] == ["h3r"] * 3
    assert list(out.variant[:3]) == list(questions.decoding_variants(256)) and list(out["NME (%)"][:3]) == [5, 6, 7]


def test_the_two_channel_rows_show_as_chapter_6_shows_its_own():
    """The page shows chapter 6's two-channel runs with chapter 6's table (h3r.stats.mean_spread)."""
    from h3r.stats import mean_spread

    table = mean_spread(variant_rows({"binary CE": [5.0, 7.0], "foreground CE": [4.0]}), "variant")
    assert table.loc["binary CE", "NME (%)"] == "6.00 ± 1.41"
    assert table.loc["foreground CE", "NME (%)"] == "4.00"  # one seed: no spread
