"""Chapter 13's schedule search (h3r.study.search): the same search for every family, scored on a
validation split, and the choice rule, on made-up tables."""
from __future__ import annotations

import pandas as pd
import pytest

from h3r.config import PRESETS, Config
from h3r.profiles import chapter
from h3r.stats import without_terms
from h3r.study import search
from h3r.study.answers import answers_study


def made_up(values: dict[tuple[str, str], list[float]], lrs=(1e-3, 3e-3, 1e-2)) -> pd.DataFrame:
    """Search rows: (family, loss setting) -> validation NME per learning rate."""
    return pd.DataFrame([{"family": f, "setting": s, "lr": lr, "loss_args": {"beta": 10.0} if "RTM" in s else {},
                          "NME (%)": v} for (f, s), per_lr in values.items() for lr, v in zip(lrs, per_lr)])


def test_every_family_gets_the_same_search_on_the_validation_split():
    base = chapter("other_answers", "cpu").base
    planned = search.search_configs(base, [1e-3, 1e-2])
    per_family = pd.Series([f for f, _, _ in planned]).value_counts()
    assert set(per_family.index) == set(search.FAMILIES)
    assert per_family["coordinate classification (SimCC)"] == 4 and per_family["heatmaps"] == 2  # its loss settings
    assert {cfg.test_split for _, _, cfg in planned} == {search.VALIDATION}
    assert {(cfg.epochs, cfg.seed, cfg.train_samples) for _, _, cfg in planned} == {(base.epochs, 0, base.train_samples)}
    assert all(preset in PRESETS for _, members in search.FAMILIES.values() for preset in members)
    lrs = chapter("other_answers", "cpu").learning_rates
    assert max(lrs) / min(lrs) >= 10 and len(lrs) >= 3 and base.lr in lrs


def test_choose_takes_the_lowest_validation_nme_per_family():
    table = made_up({("heatmaps", "own"): [9.0, 8.0, 8.5],
                     ("SimCC", "mmpose"): [12.0, 10.0, 11.0], ("SimCC", "RTMPose"): [11.0, 9.5, 13.0]})
    chosen = search.choose(table).set_index("family")
    assert chosen.loc["heatmaps"].lr == 3e-3
    assert (chosen.loc["SimCC"].setting, chosen.loc["SimCC"].lr) == ("RTMPose", 3e-3)


def test_a_tie_within_the_machine_spread_goes_to_the_first_searched():
    """8.00 against 7.99 cannot be ranked on every machine: the first searched wins, so that the
    choice, and every run trained at it, is the same wherever the last digits move."""
    chosen = search.choose(made_up({("heatmaps", "own"): [8.0, 7.99, 9.0]}))
    assert chosen.lr.iloc[0] == 1e-3
    assert search.choose(made_up({("heatmaps", "own"): [8.0, 7.0, 9.0]})).lr.iloc[0] == 3e-3


def test_tuned_settings_reach_every_preset_of_the_family_and_the_runs():
    choices = search.choose(made_up({("heatmaps", "own"): [9.0, 8.0, 8.5],
                                     ("coordinate classification (SimCC)", "RTMPose"): [11.0, 12.0, 9.0]}))
    tuned = search.tuned_settings(choices)
    assert tuned["h3r"] == tuned["dark"] == {"lr": 3e-3, "loss_args": {}}
    assert tuned["simcc-random"] == {"lr": 1e-2, "loss_args": {"beta": 10.0}}
    seen = []

    import h3r.study.answers as answers

    def grid(configs, force=False):
        seen.extend(configs)
        return pd.DataFrame([{"preset": c.preset, "config": c, "macs": 1, "NME (%)": 1.0} for c in configs])

    def heat(base, *args, **kwargs):
        seen.append(base)
        return pd.DataFrame([{"preset": "h3r", "method": "h3r", "decoder_only": False, "config": base, "macs": 1,
                              "run": "x"}])

    with pytest.MonkeyPatch.context() as m:
        m.setattr(answers, "run_grid", grid)
        m.setattr(answers, "resolution_study", heat)
        m.setattr(answers, "decoder_only_rows", lambda *a, **k: pd.DataFrame())
        m.setattr(answers, "backbone_macs", lambda cfg: 0)
        answers_study(Config(input_size=32), [4], [0], tuned=tuned)
    assert seen[0].lr == 3e-3  # the heatmaps, chapter 5's runs only where the lr is the book's
    simcc = [c for c in seen[1:] if c.preset.startswith("simcc")]
    assert simcc and all(c.lr == 1e-2 and c.loss_args == {"beta": 10.0} for c in simcc)


def test_the_search_table_marks_the_choice_and_the_note_says_which_settings_each_chapter_uses():
    table = made_up({("heatmaps", search.OWN_LOSS): [9.0, 8.0, 8.5]})
    choices = search.choose(table)
    shown = search.search_table(table, choices)
    assert list(shown.columns) == ["lr 0.001", "lr 0.003", "lr 0.01"]
    assert shown.iloc[0].tolist() == ["9.00", "8.00 ✓", "8.50"]
    assert "trains its own heatmap runs" in search.search_note(choices, Config(lr=1e-2))
    assert "reads chapter 5's heatmap runs back" in search.search_note(choices, Config(lr=3e-3))


def test_the_diagnosis_reads_each_setting_against_simccs_default():
    rows = pd.DataFrame([{"variant": v, "seed": s, "heatmap_stride": 4, "NME (%)": nme}
                         for v, per_seed in {search.SIMCC_DEFAULT: [14.0, 14.5, 13.8],
                                             "one-hot labels": [9.0, 9.6, 8.9],
                                             "KL summed over the bins": [14.1, 14.3, 13.9]}.items()
                         for s, nme in enumerate(per_seed)])
    text = without_terms(search.diagnosis_text(rows))
    assert "*one-hot labels* minus the default" in text and "**supported**" in text.split("\n")[0]
    assert "within noise" in text.split("\n")[1]
    assert set(search.SIMCC_VARIANTS) >= {search.SIMCC_DEFAULT, "one-hot labels", "KL summed over the bins"}


def test_the_stored_search_follows_the_choice_rule_from_its_own_runs():
    """book/measurements/answers_search.json holds one cpu build's search: choosing again from its
    runs gives the choices it stores."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "book" / "measurements" / "answers_search.json"
    record = json.loads(path.read_text())
    runs = pd.DataFrame(record["runs"])
    again = search.choose(runs)
    assert [(r["family"], r["setting"], r["lr"]) for r in record["chosen"]] == \
        list(zip(again.family, again.setting, again.lr))
    assert record["split"] == search.VALIDATION and set(runs.family) == set(search.FAMILIES)
    lrs = chapter("other_answers", record["profile"]).learning_rates
    assert sorted(set(runs.lr)) == sorted(lrs)


def test_the_record_is_json_ready_with_its_provenance():
    import json

    table = made_up({("heatmaps", search.OWN_LOSS): [9.0, 8.0, 8.5]}).assign(preset="h3r", commit="abc")
    record = search.search_record(table, search.choose(table), "cpu")
    assert json.loads(json.dumps(record))["chosen"][0]["lr"] == 3e-3
    assert record["computed_at"] == ["abc"] and "commit" in record["provenance"]
