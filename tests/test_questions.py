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
        "shape": variant_rows({questions.PAPER_TARGET: [5.0, 6.0, 7.0], "Gaussian draw, MSE (shape and loss)": [4.0, 5.1, 5.9]}),
        "imbalance": variant_rows({questions.PAPER_LOSS: [5.0, 6.0, 7.0], "sigmoid BCE": [5.5, 5.0, 8.0]}),
        "decoding": variant_rows({questions.PAPER_DECODER: [5.0, 6.0, 7.0], "top-9 sigmoid weights": [5.0, 6.0, 7.0]}),
    }


def test_differences_pair_each_alternative_with_its_questions_control_and_read_it():
    diffs = questions.differences(made_up_rows()).set_index("alternative")
    assert diffs.loc["one draw, fixed per sample", "mean"] == pytest.approx(1.0)
    assert diffs.loc["one draw, fixed per sample", "reads"] == "higher error than the paper's choice"
    assert diffs.loc["expected target, no draw", "reads"] == "within noise"
    assert diffs.loc["Gaussian draw, MSE (shape and loss)", "reads"] == "lower error than the paper's choice"
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
    assert summary[0] == ("* **Lower error than the paper's choice**: *Gaussian draw, MSE (shape and loss)* "
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
    assert all(v["fresh_samples"] is False and v["preset"] == "h3r" for v in draws.values())
    assert [v.get("draw", "fresh") for v in draws.values()] == ["fresh", "fixed", "fresh"]
    sigmoid = questions.sigmoid_variants(256)
    assert sigmoid[questions.PAPER_LOSS] == {"preset": "h3r"}
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


def test_shape_rows_change_the_shape_alone_or_the_shape_and_the_loss_on_the_draw_questions_faces():
    shapes = questions.shape_variants(1.0)
    assert shapes[questions.PAPER_TARGET] == questions.draw_variants()[questions.PAPER_DRAW]  # one baseline
    alone = Config(**shapes["Gaussian on the draw, spatial CE (the shape alone)"])
    both = Config(**shapes["Gaussian draw, MSE (shape and loss)"])
    assert alone.resolved_loss == "spatial_ce" and alone.codec_args == {"target": "gaussian", "sigma": 1.0}
    assert both.resolved_loss == "mse" and both.preset == "gauss-random"
    assert all(v["fresh_samples"] is False for v in shapes.values())


def test_the_expected_target_is_read_against_both_draws_at_every_stride():
    expected = pd.concat([
        variant_rows({questions.PAPER_DRAW: [10.0, 11.0, 12.0], "one draw, fixed per sample": [11.0, 12.0, 13.0],
                      questions.EXPECTED: [9.0, 10.1, 10.9]}, stride=4),          # -1.0 against both: lower
        variant_rows({questions.PAPER_DRAW: [10.0, 11.0, 12.0], "one draw, fixed per sample": [9.0, 12.0, 11.5],
                      questions.EXPECTED: [10.5, 10.8, 12.4]}, stride=16)])
    degenerate = pd.DataFrame({"method": ["h3r"], "heatmap_stride": [16], "reason": ["too small"]})
    diffs = questions.expected_differences(expected, degenerate).set_index(["control", "heatmap_stride"])
    assert diffs.loc[(questions.PAPER_DRAW, 4)].verdict == "supported"
    assert diffs.loc[("one draw, fixed per sample", 4)]["mean"] == pytest.approx(-2.0)
    assert diffs.loc[(questions.PAPER_DRAW, 16)].verdict == "degenerate"
    text = without_terms(questions.expected_text(questions.expected_differences(expected, degenerate)))
    assert "supported at stride 4; stride 16 degenerate (too small)" in text
    found = questions.expected_findings(questions.expected_differences(expected))
    assert len(found) == 2 and all(evidence == "[14](14_questions.ipynb)" for _, evidence, _, _ in found)
    assert found[0][3].startswith("supported at stride 4")


def test_caveats_name_the_network_data_and_budget():
    text = questions.caveats(Config(backbone="plain_cnn", input_size=64, epochs=8, train_samples=1200,
                                    dataset="synthetic_faces"))
    assert "plain_cnn x1.0 at 64 px" in text and "8 epochs of 1200 synthetic faces" in text


def test_runs_line_counts_each_run_once():
    run = pd.DataFrame({"run": ["a", "b"], "cached": [True, False]})
    rows = {"draw": run.iloc[:1], "expected": run, "decoding": pd.DataFrame({"x": [1, 2, 3]})}
    assert questions.runs_line(rows) == "2 runs (1 trained now, 1 read back), 3 decodings of the paper's networks"
