"""The study's design (h3r.study): matched controls, target errors, degenerate cells, the mechanism; and
the tables and findings the book makes of them (h3r.report)."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from h3r import stats
from h3r.config import PRESETS, Config
from h3r.stats import without_terms
from h3r.study import ablations, cost, findings, resolution, theory, training


def tiny(tmp_path, **overrides) -> Config:
    values = dict(dataset="synthetic_faces", input_size=32, train_samples=32, test_samples=16, batch_size=16,
                  epochs=1, backbone="mobilenet_v2", width_mult=0.5, lr=2e-3, eval_every=1, workers=0,
                  progress=False, out_dir=str(tmp_path / "runs"))
    return Config(**{**values, **overrides})


def test_families_differ_only_in_rounding_and_name_presets():
    for family, members in resolution.FAMILIES.items():
        assert {"deterministic", "randomized"} <= set(members), family
        assert set(members.values()) <= set(PRESETS)
    one_hot, gaussian = resolution.FAMILIES.values()
    assert {PRESETS[c].codec for c in one_hot.values()} != {PRESETS[c].codec for c in gaussian.values()}
    assert resolution.family_of("dark") == [("Gaussian target, MSE", "none (exact)")]
    assert resolution.family_of("udp") == []


def test_study_codecs_add_the_published_presets_once():
    controls = resolution.study_codecs(as_published=False)
    assert controls == ["onehot-round", "h3r", "argmax-round", "gauss-random", "dark"]
    everything = resolution.study_codecs()
    assert everything[:len(controls)] == controls and set(everything) - set(controls) == {"udp", "soft-argmax"}
    assert len(everything) == len(set(everything))


def runs_table(values: dict[tuple[str, int], list[float]]) -> pd.DataFrame:
    """Rows of a resolution study: (method, stride) -> NME per seed."""
    return pd.DataFrame([{"method": m, "codec": m, "heatmap_stride": s, "seed": seed, "NME (%)": v,
                          "decoder_only": False}
                         for (m, s), per_seed in values.items() for seed, v in enumerate(per_seed)])


def test_matched_differences_pair_each_rounding_with_its_family_control():
    rows = runs_table({("onehot-round", 4): [6.0, 6.5, 7.0], ("h3r", 4): [5.0, 5.4, 6.1],
                       ("argmax-round", 4): [8.0, 8.0, 8.0], ("gauss-random", 4): [7.0, 7.2, 7.1],
                       ("udp", 4): [3.0, 3.0, 3.0]})
    diffs = resolution.matched_differences(rows).set_index(["family", "rounding"])
    h3r = diffs.loc[("one-hot target, spatial-softmax CE", "randomized")]
    assert h3r.treatment == "h3r" and h3r.control == "onehot-round" and h3r.n == 3
    assert h3r["mean"] == pytest.approx((-1.0 - 1.1 - 0.9) / 3)
    assert h3r.low < h3r["mean"] < h3r.high < 0
    gauss = diffs.loc[("Gaussian target, MSE", "randomized")]
    assert gauss.control == "argmax-round" and gauss["mean"] == pytest.approx(-0.9)
    assert ("Gaussian target, MSE", "none (exact)") not in diffs.index  # dark was not trained
    assert "udp" not in set(diffs.treatment)  # outside every family


def test_matched_differences_read_a_degenerate_stride_as_degenerate():
    rows = runs_table({("argmax-round", s): [8.0, 8.1, 8.2] for s in (4, 16)}
                      | {("gauss-random", s): [7.0, 7.2, 7.1] for s in (4, 16)})
    degenerate = resolution.degenerate_cells(["argmax-round", "gauss-random"], [4, 16], 64, sigma=1.0)
    diffs = resolution.matched_differences(rows, degenerate=degenerate).set_index("heatmap_stride")
    assert diffs.loc[4, "verdict"] == "supported" and diffs.loc[4, "reason"] == ""
    assert diffs.loc[16, "verdict"] == "degenerate"  # the same interval, not "not shown" nor "supported"
    assert diffs.loc[16, "reason"].startswith("4×4 map: DARK's Taylor step")
    assert set(resolution.matched_differences(rows).verdict) == {"supported"}


def test_degenerate_cells_flag_dark_on_the_4x4_map_of_64_px_at_stride_16():
    methods = ["dark", "gauss-random", "udp", "argmax-round", "h3r", "dark on argmax-round",
               "argmax-round on dark"]
    cells = resolution.degenerate_cells(methods, [4, 8, 16], 64, sigma=1.0)
    assert list(cells.columns) == ["method", "heatmap_stride", "reason"]
    assert set(cells.heatmap_stride) == {16}  # none at strides 4 and 8
    assert list(cells.method) == ["dark", "gauss-random", "dark on argmax-round"]  # DARK decodes them
    assert cells.reason.iloc[0] == ("4×4 map: DARK's Taylor step needs the peak 2 cells from the border, "
                                    "which no cell is, so it decodes the argmax")
    assert resolution.degenerate_cells(methods, [16], 256, sigma=2.0).empty
    assert resolution.decoder_of("dark on argmax-round") == "dark" and resolution.decoder_of("udp") == "udp"


def test_with_target_errors_put_each_methods_target_error_beside_its_learned_error():
    rows = runs_table({("h3r", 4): [5.0, 6.0], ("h3r", 8): [7.0, 7.0], ("dark", 4): [4.0, 4.0],
                       ("dark", 8): [9.0, 9.5]})
    errors = pd.DataFrame({"method": ["h3r", "h3r", "dark", "dark"], "heatmap_stride": [4, 8, 4, 8],
                           "target_error": [0.011, 0.02, 1.234, 2.5]})
    table = resolution.with_target_errors(rows, errors)
    assert list(table.columns) == [("stride 4", "learned"), ("stride 4", "target error"), ("stride 8", "learned"),
                                   ("stride 8", "target error")]
    assert table.loc["h3r", ("stride 4", "learned")] == "5.50 ± 0.71"
    assert table.loc["h3r", ("stride 8", "target error")] == 0.02
    assert table.loc["dark", ("stride 4", "target error")] == 1.23
    degenerate = pd.DataFrame({"method": ["dark"], "heatmap_stride": [8], "reason": ["too small"]})
    marked = resolution.with_target_errors(rows, errors, degenerate=degenerate)
    assert marked.loc["dark", ("stride 8", "learned")] == "9.25 ± 0.35 †"
    assert marked.loc["dark", ("stride 4", "learned")] == "4.00 ± 0.00"
    assert marked.loc["h3r", ("stride 8", "learned")] == "7.00 ± 0.00"
    assert resolution.degenerate_notes(degenerate) == ["† dark at stride 8: too small"]
    assert resolution.degenerate_notes(degenerate, methods=["h3r"]) == [] and resolution.degenerate_notes(None) == []


def test_stride_verdicts_say_where_the_claim_holds_fails_or_is_noise():
    assert stats.stride_verdicts({2: "supported", 4: "supported"}) == "supported at every stride"
    assert stats.stride_verdicts({2: "supported", 4: "not shown", 8: "contradicted", 16: "contradicted"}) == (
        "supported at stride 2; within noise at stride 4; contradicted at strides 8, 16")
    assert stats.stride_verdicts({8: "mostly", 2: "partly", 16: "mostly", 4: "partly"}) == (
        "partly at strides 2, 4; mostly at strides 8, 16")
    assert stats.stride_verdicts({4: "mostly", 8: "mostly"}) == "mostly at every stride"
    assert stats.stride_verdicts({4: "not supported"}) == "not supported at stride 4"
    degenerate = stats.stride_verdicts({2: "supported", 4: "supported", 16: "degenerate"}, {16: "4×4 map"})
    assert degenerate == "supported at strides 2, 4; stride 16 degenerate (4×4 map)"


def test_theory_checks_match_the_closed_forms_by_the_findings_rule():
    """The sizes the findings use, judged by the rule the findings use (h3r.stats.THEORY_RULE)."""
    from h3r.analysis import CORNER_MEAN

    checks = theory.theory_checks()
    assert stats.theory_verdicts(checks, CORNER_MEAN / 2) == {"linear": "supported", "unbiased": "supported",
                                                             "lossless": "supported"}
    assert 0 < checks["mean_error"]
    off = {**checks, "round_per_stride": CORNER_MEAN / 2 + stats.THEORY_TOLERANCE["round_per_stride"] * 1.01,
           "lossless": 2 * stats.LOSSLESS_PX}
    assert stats.theory_verdicts(off, CORNER_MEAN / 2) == {"linear": "not supported", "unbiased": "supported",
                                                          "lossless": "not supported"}


def test_findings_give_a_verdict_per_claim_from_the_rows():
    better = {("onehot-round", s): [6.0 + s, 6.4 + s, 6.9 + s] for s in (4, 8)}
    better |= {("h3r", s): [5.0, 5.3, 5.9] for s in (4, 8)}
    better |= {("argmax-round", s): [7.0, 7.1, 7.2] for s in (4, 8)}
    better |= {("gauss-random", s): [7.5, 7.0, 7.9] for s in (4, 8)}
    checks = theory.theory_checks(points=64, draws=64)
    table = findings.findings(runs_table(better), None, {"top-1": 6.0, "top-9": 5.0}, checks).set_index("claim")
    assert list(table.columns) == ["evidence", "key numbers", "verdict", "caveats"]
    rounding = table[table.index.str.startswith("With everything else equal")]
    assert list(rounding.verdict) == ["supported at every stride", "within noise at strides 4, 8"]
    assert "stride 4: -" in without_terms(rounding["key numbers"].iloc[0])
    flat = table.loc[table.index.str.startswith("H3R's error stays nearly flat")].iloc[0]
    assert flat.verdict == "supported"
    assert "h3r ×1.00 (5.40 → 5.40 %), onehot-round ×1.38 (10.43 → 14.43 %)" in without_terms(flat["key numbers"])
    assert table.loc[table.index.str.startswith("The decoder needs several")].iloc[0].verdict == "supported"
    assert table.iloc[-1].verdict == "not tested here"
    # the build's caveats are a constant the page prints once, not a cell repeated in every row
    assert findings.CAVEATS not in set(table.caveats) and (table.caveats == findings.CAVEATS_TAG).sum() == 4
    learned = pd.DataFrame({"heatmap_stride": [4, 8], "mass": [0.9, 0.95], "error": [0.1, 0.05],
                            "uniform": [0.18, 0.18]})
    with_mechanism = findings.findings(runs_table(better), learned, None, checks).set_index("claim")
    mechanism = with_mechanism[with_mechanism.index.str.startswith("(beyond the paper)")]
    assert mechanism.verdict.tolist() == ["partly at stride 4; mostly at stride 8"]
    # the notebook shows the table as Markdown, where a pipe would end its cell
    assert not with_mechanism.reset_index().map(lambda cell: "|" in str(cell)).any().any()
    worse = runs_table({("onehot-round", 4): [5.0, 5.1, 5.2], ("h3r", 4): [6.0, 6.2, 6.1]})
    verdicts = findings.findings(worse, None, None, checks).set_index("claim").verdict
    assert verdicts[verdicts.index.str.startswith("With everything else equal")].tolist() == [
        "contradicted at stride 4"]


def test_findings_grade_the_growth_and_keep_degenerate_strides_out():
    grows = {("onehot-round", s): [v] * 3 for s, v in ((2, 2.3), (16, 11.04))}  # x4.80
    grows |= {("h3r", s): [v, v + 0.1, v - 0.1] for s, v in ((2, 4.45), (16, 11.18))}  # x2.51
    grows |= {("argmax-round", s): [5.0, 5.1, 5.2] for s in (2, 16)}
    grows |= {("gauss-random", s): [4.0, 4.1, 4.2] for s in (2, 16)}
    checks = theory.theory_checks(points=16, draws=16)
    degenerate = resolution.degenerate_cells(["argmax-round", "gauss-random", "h3r", "onehot-round"], [2, 16], 64, 1.0)
    table = findings.findings(runs_table(grows), None, None, checks, degenerate=degenerate).set_index("claim")
    flat = table.loc[table.index.str.startswith("H3R's error stays nearly flat")].iloc[0]
    assert flat.verdict == "partly"
    assert "h3r ×2.51 (4.45 → 11.18 %), onehot-round ×4.80 (2.30 → 11.04 %)" in without_terms(flat["key numbers"])
    gaussian = table.loc["With everything else equal, randomized rounding localises better than deterministic "
                         "rounding (Gaussian target, MSE)"]
    assert gaussian.verdict == ("supported at stride 2; stride 16 degenerate (4×4 map: DARK's Taylor step needs the "
                                "peak 2 cells from the border, which no cell is, so it decodes the argmax)")
    assert "stride 16 (degenerate): -1.00" in without_terms(gaussian["key numbers"])


def test_resolution_answer_states_each_family_with_its_verdicts_and_growth():
    grows = {("onehot-round", s): [v] * 3 for s, v in ((2, 2.3), (16, 11.04))}
    grows |= {("h3r", s): [v, v + 0.1, v - 0.1] for s, v in ((2, 4.45), (16, 11.18))}
    grows |= {("argmax-round", s): [5.0, 5.1, 5.2] for s in (2, 16)}
    grows |= {("gauss-random", s): [4.0, 4.1, 4.2] for s in (2, 16)}
    rows = runs_table(grows).assign(**{"FR@0.1 (%)": 1.0})
    degenerate = resolution.degenerate_cells(["argmax-round", "gauss-random", "h3r", "onehot-round"], [2, 16], 64, 1.0)
    lowers, flat, best = without_terms(resolution.resolution_answer(rows, degenerate)).split("\n")
    assert lowers == ("* **Does randomized rounding lower the error?** one-hot target, spatial-softmax CE: "
                      "contradicted at stride 2; within noise at stride 16; Gaussian target, MSE: supported at "
                      "stride 2; stride 16 degenerate.")
    # the Gaussian family is degenerate at 16: its growth is not read there, and with one stride left, not at all
    assert flat == ("* **Does its error stay nearly flat?** one-hot target, spatial-softmax CE: **partly**, `h3r` "
                    "×2.51, `onehot-round` ×4.80 (stride 2 to 16).")
    assert best.startswith("* **The lowest error at stride 2**: `onehot-round`, 2.30 % NME")
    one_hot, gaussian = without_terms(resolution.resolution_numbers(rows, degenerate)).split("\n")
    assert "`h3r` minus `onehot-round`" in one_hot and "stride 2: +2.15 [" in one_hot
    assert "**contradicted at stride 2; within noise at stride 16**" in one_hot
    assert "stride 16 degenerate (4×4 map" in gaussian


def test_growth_is_read_at_the_coarsest_stride_no_codec_is_degenerate_at():
    grows = {(m, s): [v * s] * 2 for m, v in (("argmax-round", 1.0), ("gauss-random", 0.5)) for s in (2, 4, 8)}
    rows = runs_table(grows).assign(**{"FR@0.1 (%)": 1.0})
    degenerate = resolution.degenerate_cells(["argmax-round", "gauss-random"], [2, 4, 8], 32, 1.0)  # 4x4 at 8
    growth = resolution.family_growth(rows, degenerate).iloc[0]
    assert (growth.fine, growth.coarse, growth.skipped) == (2, 4, [8])
    assert "(stride 2 to 4; stride 8 degenerate, so read at stride 4)" in resolution.growth_text(growth)


def test_findings_compare_h3r_with_dark_and_udp_and_its_decoder_alone():
    rows = runs_table({("h3r", 4): [5.0, 5.2, 5.1], ("dark", 4): [6.0, 6.1, 6.3], ("udp", 4): [5.5],
                       ("onehot-round", 4): [8.0, 8.1, 8.2], ("h3r on onehot-round", 4): [6.3, 6.2, 6.4]})
    rows.loc[rows.method == "h3r on onehot-round", "decoder_only"] = True
    checks = theory.theory_checks(points=16, draws=16)
    table = findings.findings(rows, None, None, checks).set_index("claim")
    dark = table.loc["H3R localises better than DARK (each as published)"]
    assert dark.verdict == "supported at every stride" and "stride 4: -1.03 [" in without_terms(dark["key numbers"])
    udp = table.loc["H3R localises better than UDP (each as published)"]
    assert udp.verdict == "within noise at stride 4" and "stride 4: -0.50 (one seed)" in without_terms(udp["key numbers"])
    alone = table.loc[table.index.str.contains("its decoder alone")].iloc[0]
    assert alone.verdict == "supported at every stride" and "h3r on onehot-round minus onehot-round" in \
        without_terms(alone["key numbers"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A two-codec resolution study of tiny runs, the published preset with one seed."""
    base = tiny(tmp_path_factory.mktemp("study"))
    rows = resolution.resolution_study(base, [4], [0, 1], ["onehot-round", "h3r", "udp"], sigma=1.0,
                                  published_seeds=[0])
    return base, rows


@pytest.mark.slow
def test_resolution_study_trains_the_controls_on_every_seed_and_adds_decoder_only_rows(trained):
    base, rows = trained
    runs = rows[~rows.decoder_only]
    assert runs.groupby("method").seed.apply(list).to_dict() == {"h3r": [0, 1], "onehot-round": [0, 1],
                                                                "udp": [0]}
    assert runs.set_index("method").loc["udp"].codec_args == {"sigma": 1.0}
    extra = rows[rows.decoder_only]
    assert sorted(extra.method.unique()) == ["h3r on onehot-round", "onehot-round on h3r"]
    h3r_read_by_argmax = extra[extra.method == "onehot-round on h3r"].set_index("seed")["NME (%)"]
    h3r_own = runs[runs.method == "h3r"].set_index("seed")["NME (%)"]
    assert (h3r_read_by_argmax != h3r_own).all()  # another decoder, another number
    again = resolution.resolution_study(base, [4], [0, 1], ["onehot-round", "h3r", "udp"], sigma=1.0,
                                   published_seeds=[0])
    assert again[~again.decoder_only].cached.all()
    pd.testing.assert_series_equal(again["NME (%)"], rows["NME (%)"])


@pytest.mark.slow
def test_learning_curves_read_every_epochs_evaluation(trained):
    _, rows = trained
    curves = training.learning_curves(rows)
    assert len(curves) == 5  # five runs, one epoch each
    assert set(curves.epoch) == {1} and curves["NME (%)"].gt(0).all()
    assert rows[rows.method == "udp"].config.iloc[0].preset == "udp"


@pytest.mark.slow
def test_target_errors_measure_each_method_without_a_network(trained):
    base, _ = trained
    errors = resolution.target_errors(base, [4, 8], ["onehot-round", "h3r"], sigma=1.0)
    assert list(errors.columns) == ["method", "heatmap_stride", "target_error"]
    error = errors.set_index(["method", "heatmap_stride"]).target_error
    assert set(error.index.get_level_values(0)) == {"onehot-round", "h3r", "h3r on onehot-round",
                                                    "onehot-round on h3r"}
    # the expected target decodes losslessly; the rounded cell loses the fraction, more at stride 8
    assert error[("h3r", 4)] < 0.01 < error[("onehot-round", 4)] < error[("onehot-round", 8)]
    # H3R's decoder reads the one-hot target as a spatial-CE network's logits: the hot cell
    assert error[("h3r on onehot-round", 8)] == pytest.approx(error[("onehot-round", 8)], abs=1e-6)


@pytest.mark.slow
def test_mechanism_measures_the_mass_on_the_four_neighbours(trained):
    _, rows = trained
    learned = ablations.mechanism(rows, samples=4)
    assert list(learned.seed) == [0, 1] and (learned.keypoints > 0).all()
    assert learned["mass"].between(0, 1).all() and learned["error"].between(0, 1).all()
    assert learned["uniform"].between(0, 0.75).all()
    logits, keypoints, visible, codec = ablations.predicted_logits(
        rows[(rows.method == "h3r") & ~rows.decoder_only].config.iloc[0], samples=3)
    assert logits.shape == (3, keypoints.shape[1], *codec.heatmap_size[::-1]) and visible.shape == keypoints.shape[:2]


@pytest.mark.slow
def test_official_cost_check_reproduces_every_readme_row():
    matching, rows = cost.official_cost_check()
    assert rows > 0 and matching == rows


def test_published_seeds_reach_only_the_presets_outside_the_families(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(resolution, "run_grid", lambda configs, force=False: seen.extend(configs) or pd.DataFrame(
        [{**dataclasses.asdict(c), "config": c, "run": str(c.run_dir())} for c in configs]))
    resolution.resolution_study(tiny(tmp_path), [4, 8], [0, 1, 2], ["gauss-random", "soft-argmax"],
                           published_seeds=[0])
    assert sorted((c.preset, c.heatmap_stride, c.seed) for c in seen if c.preset == "soft-argmax") == [
        ("soft-argmax", 4, 0), ("soft-argmax", 8, 0)]
    assert len([c for c in seen if c.preset == "gauss-random"]) == 6


def test_published_strides_reach_only_the_presets_outside_the_families(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(resolution, "run_grid", lambda configs, force=False: seen.extend(configs) or pd.DataFrame(
        [{**dataclasses.asdict(c), "config": c, "run": str(c.run_dir())} for c in configs]))
    resolution.resolution_study(tiny(tmp_path), [2, 4, 8], [0, 1], ["gauss-random", "udp"], published_seeds=[0],
                           published_strides=[4, 16])
    assert sorted((c.preset, c.heatmap_stride, c.seed) for c in seen if c.preset == "udp") == [("udp", 4, 0)]
    assert sorted({c.heatmap_stride for c in seen if c.preset == "gauss-random"}) == [2, 4, 8]


def _cost_runs(h3r_scale: float = 10.0, vanilla_scale: float = 14.0) -> pd.DataFrame:
    """Made-up runs of the cost study: NME falling with the input size, three seeds."""
    noise = {0: 0.05, 1: -0.03, 2: 0.01}
    return pd.DataFrame([{"preset": codec, "input_size": size, "seed": seed, "GMACs": gmacs,
                          "NME (%)": scale * 32 / size + noise[seed]}
                         for size, gmacs in ((32, 0.1), (48, 0.22), (64, 0.4)) for seed in range(3)
                         for codec, scale in (("h3r", h3r_scale), ("argmax-round", vanilla_scale))])


def test_cross_resolution_pairs_h3r_at_each_size_with_vanilla_at_every_larger_one():
    from h3r.study.cost import cross_resolution

    cost = cross_resolution(_cost_runs())
    assert len(cost) == 6 and (cost["h3r input"] <= cost["argmax-round input"]).all()
    row = cost[(cost["h3r input"] == 48) & (cost["argmax-round input"] == 64)].iloc[0]
    assert row["mean"] == pytest.approx(10 * 32 / 48 - 14 * 32 / 64, abs=1e-9)
    assert row["verdict"] == "supported" and row["MACs ratio"] == pytest.approx(0.55)
    assert cost.set_index(["h3r input", "argmax-round input"]).loc[(32, 64), "verdict"] == "contradicted"


def test_findings_state_the_cost_claim_from_the_cross_resolution_pairs():
    from h3r.study.findings import findings
    from h3r.study.cost import cross_resolution

    rows = pd.DataFrame(columns=["method", "heatmap_stride", "seed", "NME (%)", "decoder_only"]).astype(
        {"decoder_only": bool})
    theory = {"round_per_stride": 0.383, "floor_over_round": 2.0, "draws": 4, "mean_error": 0.0, "noise": 1.0,
              "stride": 4, "lossless": 0.0}
    table = findings(rows, None, None, theory, cost=cross_resolution(_cost_runs()))
    row = table[table.evidence.str.contains("07_cost")].iloc[0]
    assert row.verdict == "mixed: see the key numbers"
    assert "h3r at 48 px minus argmax-round at 64 px: -0.33" in without_terms(row["key numbers"])
    flat = findings(rows, None, None, theory, cost=cross_resolution(_cost_runs(h3r_scale=5.0)))
    assert flat[flat.evidence.str.contains("07_cost")].iloc[0].verdict == "supported at every pair of sizes"


# --- the runs every chapter reads, and the numbers chapters 4, 6 and 7 derive ------------------------

def test_resolution_runs_read_chapter_5s_settings(monkeypatch):
    """Chapter 5's settings are resolved once (open_chapter), and the chapters that read its runs
    ask for them with their own training settings (profiles.reading): the same base config,
    hence the same run keys."""
    from h3r.profiles import BASE, chapter, reading

    calls = []
    monkeypatch.setattr(resolution, "resolution_study", lambda *a, **k: calls.append((a, k)) or "rows")
    assert resolution.resolution_runs(chapter("heatmap_resolution", "smoke")) == "rows"
    (base, strides, seeds, codecs), kwargs = calls[0]
    assert (strides, seeds, codecs) == ([4, 8], [0], resolution.study_codecs(True))
    assert kwargs == dict(sigma=1.0, force=False, published_seeds=[0], published_strides=[4, 8],
                          decoder_only=resolution.DECODER_ONLY)
    chapter_4 = chapter("synthetic_benchmark", "smoke", max_steps=2)
    resolution.resolution_runs(reading("heatmap_resolution", chapter_4, strides=[4], seeds=[0]), codecs=["h3r"],
                               force=True)
    (base4, strides, seeds, codecs), kwargs = calls[1]
    assert (strides, seeds, codecs, kwargs["force"]) == ([4], [0], ["h3r"], True)
    assert base4 == chapter_4.base and base4.max_steps == 2  # the reader's step cap reaches the runs
    assert base == dataclasses.replace(BASE["smoke"], device="auto")


def test_cost_runs_read_chapter_7s_sizes_with_chapter_5s_sigma(monkeypatch):
    from h3r.profiles import chapter

    calls = []
    monkeypatch.setattr(cost, "cost_study", lambda *a, **k: calls.append((a, k)) or "runs")
    assert cost.cost_runs(chapter("cost", "smoke", seeds=[3])) == "runs"
    (base, sizes, seeds), kwargs = calls[0]
    assert (sizes, seeds, kwargs) == ([32, 64], [3], dict(sigma=1.0, force=False))
    assert base.input_size == 32 and base.out_dir.endswith("smoke")
    assert chapter("cost", "smoke").sigma == chapter("heatmap_resolution", "smoke").sigma


def test_nearest_stride_prefers_the_papers_stride_4():
    assert resolution.nearest_stride([2, 4, 8]) == 4
    assert resolution.nearest_stride([8, 16]) == 8
    assert resolution.nearest_stride([1, 2], target=8) == 2


def fake_evaluation(nme: float) -> dict:
    return {"summary": {"all": {"NME (%)": nme}}}


def test_topk_nme_averages_each_decoding_over_the_runs(monkeypatch):
    import h3r.runs

    monkeypatch.setattr(h3r.runs, "reevaluate", lambda c, codec, select, k: fake_evaluation(c + k))
    runs = pd.DataFrame({"config": [1.0, 3.0]})
    assert ablations.topk_nme(runs, ks=(1, 9)) == {"top-1": 3.0, "top-9": 11.0}


def test_activation_points_skip_decodings_with_more_points_than_cells(monkeypatch):
    seen = []

    def decode(config, decoders):
        seen.append([options for _, options in decoders])
        return [fake_evaluation(float(len(options) + i)) for i, (_, options) in enumerate(decoders)]

    monkeypatch.setattr(ablations, "reevaluate_decoders", decode)
    runs = pd.DataFrame({"config": ["a", "b"], "heatmap_stride": [4, 8], "seed": [0, 1]})
    table = ablations.activation_points(runs, ks=[1, 25], windows=[1], input_size=32)
    # stride 4: an 8x8 map takes all three; stride 8: a 4x4 map has 16 cells, fewer than 25
    assert table.points.tolist() == ["top-1", "top-25", "window 3x3", "top-1", "window 3x3"]
    assert table.n_points.tolist() == [1, 25, 9, 1, 9]
    assert table.stride.tolist() == [4, 4, 4, 8, 8] and table.seed.tolist() == [0, 0, 0, 1, 1]
    assert seen[1] == [dict(select="topk", k=1), dict(select="window", radius=1)]
    assert table.nme.tolist() == [2.0, 3.0, 4.0, 2.0, 3.0]


def test_target_and_head_variants_change_only_what_their_label_says():
    targets = ablations.target_variants(1.5)
    assert list(targets) == ["one-hot draw (the paper)", "Gaussian (sigma 1.5) on the draw",
                             "bilinear expected target, no draw"]
    assert all(v["preset"] == "h3r" for v in targets.values())
    assert targets["Gaussian (sigma 1.5) on the draw"]["codec_args"] == {"target": "gaussian", "sigma": 1.5}
    head = ablations.head_variants(64, lr=0.01)
    assert head["binary CE, pos_weight = 64 (H·W)"]["loss_args"] == {"prior": 0.0, "pos_weight": 64.0}
    assert head["binary CE, 3x the learning rate"]["lr"] == pytest.approx(0.03)
    assert head["binary CE, prior -log(64) (the default)"] == {"loss": "binary_ce"}
    assert head["foreground CE (spatial CE on the foreground logits)"] == {"loss": "foreground_ce"}
    assert len(head) == 7


def test_head_decodings_add_the_log_odds_nme(monkeypatch):
    import h3r.runs

    monkeypatch.setattr(h3r.runs, "reevaluate", lambda c, score_mode: fake_evaluation(10 * c))
    runs = pd.DataFrame({"variant": ["a", "b"], "seed": [0, 0], "NME (%)": [5.0, 6.0], "commit": ["x", "x"],
                         "config": [1, 2]})
    head = ablations.head_decodings(runs)
    assert head.columns.tolist() == ["variant", "seed", "foreground (official)", "commit", "log-odds"]
    assert head["foreground (official)"].tolist() == [5.0, 6.0] and head["log-odds"].tolist() == [10, 20]


def test_per_face_nme_reads_each_runs_predictions(tmp_path):
    import torch

    torch.save({"nme": torch.tensor([0.01, 0.02])}, tmp_path / "predictions.pt")
    errors = resolution.per_face_nme(pd.DataFrame({"preset": ["h3r"], "run": [str(tmp_path)]}))
    assert list(errors) == ["h3r"] and errors["h3r"].tolist() == pytest.approx([0.01, 0.02])


def test_readme_costs_count_params_and_flops_beside_the_readmes(monkeypatch):
    monkeypatch.setattr(cost, "PAPER_NETWORKS", (("mobilenet_v2", "MobileNetV2"),))
    table = cost.readme_costs(datasets=(("300W", 68),), sizes=(256,))
    row = table.loc["MobileNetV2, 300W (68 points), 256 px"]
    assert len(table) == 1
    # BatchNorm counted (thop-style) costs more than the MACs alone; the README's numbers stand beside
    assert row["FLOPs (G), thop-style"] > row["MACs (G), no BatchNorm"] > 0
    assert row["params (M)"] == pytest.approx(row["params (M), reported"], abs=0.01)


def test_macs_by_stride_grow_as_the_heatmap_gets_finer(monkeypatch):
    monkeypatch.setattr(cost, "PAPER_NETWORKS", (("mobilenet_v2", "MobileNetV2"),))
    base = Config(backbone="mobilenet_v2", width_mult=0.5)
    table = cost.macs_by_stride(base, strides=(2, 4), keypoints=5)
    assert table.network.tolist() == ["MobileNetV2, 256 px"] * 2 + ["mobilenet_v2 (the cpu profile's), 64 px"] * 2
    assert table.stride.tolist() == [2, 4, 2, 4]
    macs = table["MACs (G)"].tolist()
    assert macs[0] > macs[1] > macs[2] > macs[3]


def test_network_speed_times_the_network_in_a_process_of_its_own():
    """h3r.benchmarks in a fresh process (no script of the checkout): the settings reach it, and
    it times real training steps."""
    record = cost.network_speed(Config(backbone="plain_cnn", width_mult=0.5, input_size=32, batch_size=2), "cpu",
                                 steps=2, warmup=0, keypoints=5)
    assert record["settings"]["input"] == 32 and record["settings"]["batch"] == 2
    assert record["settings"]["steps"] == 2 and record["settings"]["device"] == "cpu"
    assert [r["channels_last"] for r in record["results"]] == [False, True]
    assert all(r["images_per_s"] > 0 for r in record["results"]) and record["provenance"]["commit"]
    with pytest.raises(RuntimeError, match="h3r.benchmarks training failed"):
        from h3r.benchmarks import in_fresh_process

        in_fresh_process("training", backbone="no_such_network")
    with pytest.raises(ValueError, match="command must be one of"):
        in_fresh_process("nothing")


def test_chapter_7_states_each_smaller_against_larger_pair_with_its_interval_or_one_seed():
    from h3r.study.cost import cost_answer, cost_pairs_table
    from h3r.study.cost import cross_resolution

    cost = cross_resolution(_cost_runs())
    answer = without_terms(cost_answer(cost))
    assert answer.count("\n") == 2  # three pairs where H3R's input is the smaller
    assert "* H3R at 48 px minus argmax-round at 64 px: -0.33 points [" in answer
    assert "(3 seeds), **supported**" in answer
    assert "at 0.55 of the MACs" in answer
    one = cross_resolution(_cost_runs().query("seed == 0"))
    assert "48 px minus argmax-round at 64 px: -0.33 points (one seed), **within noise**" in without_terms(cost_answer(one))
    table = cost_pairs_table(one)
    assert (table["95 % interval"] == "none (one seed)").all() and set(table.verdict) == {"within noise"}
    assert cost_answer(cost.iloc[:0]) == "One input size only: no smaller-against-larger pair."
