"""The tables and sentences of the learned chapters (h3r.report), on hand-made study rows."""
from __future__ import annotations

import pandas as pd

from h3r.config import Config
from h3r.study import ablations, resolution, training


def study_rows(values: dict[tuple[str, int], list[float]], cached=False) -> pd.DataFrame:
    """Rows of a resolution study: (method, stride) -> NME per seed."""
    return pd.DataFrame([{"method": m, "codec": m, "heatmap_stride": s, "seed": seed, "NME (%)": v,
                          "decoder_only": " on " in m, "cached": cached}
                         for (m, s), per_seed in values.items() for seed, v in enumerate(per_seed)])


def test_runs_line_counts_runs_evaluations_and_target_errors():
    rows = study_rows({("h3r", 4): [5.0, 6.0], ("onehot-round on h3r", 4): [7.0, 7.0]})
    errors = pd.DataFrame({"method": ["h3r", "h3r", "dark"], "heatmap_stride": [4, 8, 4], "target_error": 1.0})
    assert resolution.runs_line(rows, errors, [4, 8]) == ("2 runs (2 trained now, 0 read back), 2 decoder-only "
                                                      "evaluations;\ntarget errors of 2 methods at strides [4, 8]")


def test_family_tables_list_each_familys_methods_in_its_order():
    trained = study_rows({("h3r", 4): [5.0, 6.0], ("onehot-round", 4): [7.0, 8.0], ("argmax-round", 4): [9.0]})
    errors = pd.DataFrame({"method": ["h3r", "onehot-round", "argmax-round"], "heatmap_stride": 4,
                           "target_error": [0.5, 1.5, 2.5]})
    one_hot, gaussian = resolution.family_tables(trained, errors).values()
    assert one_hot.index.tolist() == ["onehot-round", "h3r"]  # the control first, not as the rows come
    assert one_hot.index.name is None
    assert one_hot[("stride 4", "learned")].tolist() == ["7.50 ± 0.71", "5.50 ± 0.71"]
    assert one_hot[("stride 4", "target error")].tolist() == [1.5, 0.5]
    assert gaussian.index.tolist() == ["argmax-round"]


def test_difference_tables_show_signed_differences_by_family():
    diffs = pd.DataFrame({"family": ["A", "A", "B"], "treatment": ["t", "t", "u"], "control": "c",
                          "heatmap_stride": [4, 8, 4], "mean": [-0.5, 0.25, 1.0], "low": [-1.0, -0.1, 0.5],
                          "high": [-0.1, 0.6, 1.5], "n": 3, "verdict": ["supported", "not shown", "contradicted"],
                          "treatment_mean": [5.0, 6.0, 7.0], "control_mean": [5.5, 5.75, 6.0]})
    tables = resolution.difference_tables(diffs)
    assert list(tables) == ["A", "B"]
    a = tables["A"]
    assert a.index.names == ["treatment", "control", "stride"]
    assert a.columns.tolist() == ["difference (NME points)", "95 % interval", "seeds", "verdict"]
    assert a["difference (NME points)"].tolist() == ['<span title="5.00 − 5.50">-0.50</span>',
                                                     '<span title="6.00 − 5.75">+0.25</span>']
    assert a["95 % interval"].tolist() == ["[-1.00, -0.10]", "[-0.10, +0.60]"]


def test_mechanism_table_has_mean_and_spread_per_stride():
    learned = pd.DataFrame({"heatmap_stride": [4, 4, 8], "mass": [0.9, 0.8, 0.5], "error": [0.1, 0.2, 0.3],
                            "uniform": [0.2, 0.2, 0.2]})
    table = ablations.mechanism_table(learned)
    assert table.columns.tolist() == ["mass", "error", "uniform"]
    assert table.loc[4, "mass"] == "0.850 ± 0.071" and table.loc[4, "uniform"] == "0.200 ± 0.000"
    assert table.loc[8, "error"] == "0.300"  # one seed: no spread, never "nan"


def test_training_setup_states_the_network_and_schedule():
    base = Config(backbone="plain_cnn", head_width=64, input_size=64, warmup=0.1, schedule="cosine", threads=1)
    setup = training.training_setup(base, params=163_000, macs=2_100_000)
    assert setup["network"] == "plain_cnn x1.0, head width 64"
    assert setup["parameters"] == "163 k" and setup["MACs per image (stride 4)"] == "2.1 M"
    assert setup["schedule"] == "cosine, 10% linear warm-up" and setup["threads per run"] == 1


def test_schedule_search_names_the_networks_and_trainings():
    runs = [{"net": "timm:mobilenetv3", "width": 0.5, "codec": "argmax-round", "stride": 4, "epochs": 8,
             "batch": 16, "lr": 0.01, "schedule": "cosine", "img_s_cpu": 100.0, "NME": 5.0, "FR": 1.0},
            {"net": "plain:16,32/1,3", "width": 1.0, "codec": "h3r", "stride": 4, "epochs": 4, "batch": 8,
             "lr": 0.003, "schedule": "multistep", "img_s_cpu": 50.0, "NME": 6.0, "FR": 2.0}]
    table = training.schedule_search(runs)
    assert table.columns.tolist() == ["network", "codec", "stride", "training", "img / CPU-s", "NME (%)",
                                      "FR@0.1 (%)"]
    assert table.network.tolist() == ["mobilenetv3 x0.5", "plain:16, 32 / 1, 3"]
    assert table.codec.tolist() == ["round", "h3r"]
    assert table.training[0] == "8 epochs, batch 16, lr 0.01, cosine"


def head_rows() -> pd.DataFrame:
    return pd.DataFrame({"variant": ["binary CE", "binary CE", "focal"], "seed": [0, 1, 0],
                         "foreground (official)": [6.0, 8.0, 5.0], "log-odds": [4.0, 4.0, 3.0]})


def test_activation_and_head_tables():
    activation = pd.DataFrame({"points": ["top-1", "top-25", "top-1"], "stride": [4, 4, 8],
                               "nme": [5.0, 4.0, 6.0]})
    table = ablations.activation_table(activation)
    assert table.columns.tolist() == ["stride 4", "stride 8"]
    assert table.loc["top-25"].tolist() == ["4.00", "—"]  # no 25 points on the coarser map
    head = ablations.head_table(head_rows())
    assert head.index.tolist() == ["binary CE", "focal"]
    assert head[("foreground (official)", "mean")].tolist() == [7.0, 5.0]


def test_official_head_line_and_ablations_answer_name_the_best_loss():
    line = ablations.official_head_line(head_rows(), "binary_ce")
    assert "**focal**, 5.00 % NME, against 7.00 %" in line and "trains with `binary_ce`" in line
    activation = pd.DataFrame({"points": ["top-1", "top-9"], "stride": [4, 4], "nme": [6.0, 5.0]})
    targets = pd.DataFrame({"variant": ["one-hot", "bilinear"], "NME (%)": [5.0, 4.5]})
    learned = pd.DataFrame({"heatmap_stride": [4], "mass": [0.95], "error": [0.01], "uniform": [0.2]})
    answer = ablations.ablations_answer(activation, targets, head_rows(), learned, stride=4)
    lines, rule = answer.split("\n\n")
    lines = lines.split("\n")
    assert len(lines) == 3 and rule.startswith("*Rule.* Per stride")  # three lines, then the rule
    assert lines[0] == ("* **Does the decoder need several activation points?** Yes: top-9 5.00 % NME against "
                        "top-1 6.00 % (stride 4).")
    assert "target `bilinear`, 4.50 %; two-channel head `focal`, 5.00 % (plain binary CE 7.00 %)" in lines[1]
    assert lines[2] == "* **Does the network learn the expected target?** Mostly at every stride."
    same = activation.assign(nme=[5.0, 4.99])  # within the machines' spread: no gain to claim
    assert "Not here" in ablations.ablations_answer(same, targets, head_rows(), learned, stride=4)
    close = head_rows().replace({"foreground (official)": {5.0: 6.95}})  # within the machines' spread
    assert "**focal** (6.95 %) and **binary CE** (7.00 %), too close to rank" in \
        ablations.official_head_line(close, "binary_ce")
