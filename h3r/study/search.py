"""Chapter 13's schedule search: every family of methods tuned by the same search before any
verdict between them.

Chapter 4 chose the book's schedule for heatmaps; a method that chapter 13 sets beside H3R
(coordinate classification, integral regression, likelihood regression) may want another. So each
family gets the same search:

* its representative preset (:data:`FAMILIES`) at one resolution (heatmap stride 4; SimCC's own
  bins), one seed, the profile's epochs (the budget held equal for all);
* every learning rate of the chapter's ``learning_rates`` setting (:data:`h3r.profiles.CHAPTERS`:
  under ``cpu`` a factor of about 32 from the lowest to the highest, the book's own among them)
  and, where the method's paper or mmpose's config sets one, its own loss settings
  (:data:`LOSS_SETTINGS`);
* scored on a validation split drawn from the training distribution (``"val"``), never the test
  split; the setting with the lowest validation NME is chosen (:func:`choose`).

Every preset of a family then trains at its family's choice (:func:`tuned_settings`). Chapter 13
also takes SimCC apart (:func:`simcc_diagnosis`): its labels, the scale of its loss and RTMPose's
label softmax, each changed alone at the chosen learning rate.
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from h3r.config import Config, preset_args
from h3r.stats import MACHINE_SPREAD, SAID, apart


#: family -> (the preset searched, at its own resolution, and the presets of chapter 13 that train
#: with the family's choice)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "heatmaps": ("h3r", ("h3r", "argmax-round", "dark")),
    "coordinate classification (SimCC)": ("simcc", ("simcc", "simcc-round", "simcc-random")),
    "integral regression (soft-argmax)": ("soft-argmax", ("soft-argmax",)),
    "DSNT": ("dsnt", ("dsnt",)),
    "likelihood regression (RLE)": ("rle", ("rle",)),
}

#: family -> its own loss settings, label -> the loss's arguments: SimCC's KL as mmpose's
#: KLDiscretLoss defaults it and as RTMPose's configs set it (beta 10, softmax on the labels).
#: mmpose's RLE config sets nothing beyond RLELoss's defaults, which h3r's ``rle`` loss has
LOSS_SETTINGS: dict[str, dict[str, dict]] = {
    "coordinate classification (SimCC)": {"mmpose's KLDiscretLoss (beta 1)": {},
                                          "RTMPose's (beta 10, label softmax)": {"beta": 10.0,
                                                                                 "label_softmax": True}},
}

#: the loss setting of a family without settings of its own
OWN_LOSS = "the method's own"

#: the split a search scores on: drawn from the training distribution, never the test split
VALIDATION = "val"

#: the stride the heatmap families are searched at (the paper's)
SEARCH_STRIDE = 4


def search_configs(base: Config, learning_rates, sigma: float | None = None) -> list[tuple[str, str, Config]]:
    """``(family, loss setting, config)`` of every run of the search: each family's preset at
    each of ``learning_rates`` and each loss setting, seed 0, scored on :data:`VALIDATION`."""
    out = []
    for family, (preset, _) in FAMILIES.items():
        for setting, loss_args in LOSS_SETTINGS.get(family, {OWN_LOSS: {}}).items():
            for lr in learning_rates:
                out.append((family, setting, dataclasses.replace(
                    base, preset=preset, codec_args=preset_args(preset, sigma), loss_args=dict(loss_args),
                    lr=lr, heatmap_stride=SEARCH_STRIDE, test_split=VALIDATION, seed=0)))
    return out


def search_study(base: Config, learning_rates, sigma: float | None = None, force: bool = False) -> pd.DataFrame:
    """Train (or read back) every run of :func:`search_configs`; one row per run with ``family``,
    ``setting`` (the loss setting), ``preset``, ``lr``, ``loss_args`` and the validation ``NME (%)``,
    in the search's order."""
    from h3r.runs import run_grid

    planned = search_configs(base, learning_rates, sigma)
    runs = run_grid([cfg for _, _, cfg in planned], force=force)
    return runs.assign(family=[f for f, _, _ in planned], setting=[s for _, s, _ in planned])


def choose(search: pd.DataFrame, spread: float = MACHINE_SPREAD) -> pd.DataFrame:
    """Per family of ``search`` (:func:`search_study`'s rows), the chosen run: the lowest validation
    NME; of the runs no more than ``spread`` above it (too close to rank on every machine,
    :func:`h3r.stats.apart`), the first in the search's order, so that the choice is the same
    wherever the last digits move. One row per family, the search's columns."""
    chosen = []
    for _, runs in search.groupby("family", sort=False):
        best = runs["NME (%)"].min()
        chosen.append(runs[[not apart(v, best, spread) for v in runs["NME (%)"]]].iloc[0])
    return pd.DataFrame(chosen).reset_index(drop=True)


def tuned_settings(choices: pd.DataFrame) -> dict[str, dict]:
    """Preset -> the config fields it trains with in chapter 13 (``lr`` and ``loss_args``): its
    family's choice (:func:`choose`), for every preset :data:`FAMILIES` lists."""
    out = {}
    for row in choices.itertuples():
        for preset in FAMILIES[row.family][1]:
            out[preset] = {"lr": row.lr, "loss_args": dict(row.loss_args)}
    return out


def search_table(search: pd.DataFrame, choices: pd.DataFrame) -> pd.DataFrame:
    """The search as chapter 13 shows it: one row per family and loss setting, one column per
    learning rate, the validation NME (%) in each cell, the chosen one marked "✓"."""
    picked = set(zip(choices.family, choices.setting, choices.lr))
    cells = [f"{nme:.2f}{' ✓' if (f, s, lr) in picked else ''}"
             for f, s, lr, nme in zip(search.family, search.setting, search.lr, search["NME (%)"])]
    table = search.assign(cell=cells, lr=[f"lr {lr:g}" for lr in search.lr])
    table = table.pivot_table(index=["family", "setting"], columns="lr", values="cell", aggfunc="first", sort=False)
    return table[[f"lr {lr:g}" for lr in sorted(set(search.lr))]].rename_axis(columns=None)


# --- SimCC taken apart -------------------------------------------------------------------------------


#: SimCC as mmpose sets it: 0.5 px bins, Gaussian labels of 6 bins, KL averaged over the bins
SIMCC_DEFAULT = "SimCC as mmpose sets it (Gaussian labels of 6 bins, KL averaged over bins)"

#: SimCC's default and each of its settings changed alone, label -> the config fields it sets: one-hot
#: labels (the label's width), the KL summed over the bins (a cross-entropy's scale, which Adam's
#: normalised steps should not mind), RTMPose's label softmax with beta 10
SIMCC_VARIANTS: dict[str, dict] = {
    SIMCC_DEFAULT: {"loss_args": {}},
    "one-hot labels": {"codec_args": {"label": "onehot"}, "loss_args": {}},
    "KL summed over the bins": {"loss_args": {"bins": "sum"}},
    "RTMPose's label softmax (beta 10)": {"loss_args": {"beta": 10.0, "label_softmax": True}},
}


def simcc_diagnosis(base: Config, tuned: dict, seeds, force: bool = False) -> pd.DataFrame:
    """:data:`SIMCC_VARIANTS` trained at SimCC's tuned learning rate (``tuned``:
    :func:`tuned_settings`) over ``seeds``, on the test split as every method of chapter 13; one
    row per run with ``variant``."""
    from h3r.runs import run_variants

    at_lr = dataclasses.replace(base, preset="simcc", lr=tuned["simcc"]["lr"])
    return run_variants(at_lr, SIMCC_VARIANTS, seeds, force=force)


def diagnosis_text(diagnosis: pd.DataFrame) -> str:
    """What changes SimCC's error, in Markdown: each of :data:`SIMCC_VARIANTS` minus SimCC's
    default, paired by seed, with its 95 % interval and the verdict on "it lowers the error"."""
    from h3r.stats import interval_text, paired_differences, verdict

    lines = []
    for variant in SIMCC_VARIANTS:
        if variant == SIMCC_DEFAULT or variant not in set(diagnosis.variant):
            continue
        d = paired_differences(diagnosis, variant, SIMCC_DEFAULT, label="variant").iloc[0]
        said = verdict(d.low, d.high)
        lines.append(f"* *{variant}* minus the default: {interval_text(d)} NME points: "
                     f"**{SAID.get(said, said)}** (the claim: it lowers the error).")
    return "\n".join(lines)


def search_note(choices: pd.DataFrame, base: Config) -> str:
    """Which settings each chapter uses: every family's choice, and whether chapter 13's heatmap
    runs are chapter 5's (the heatmaps' choice is the book's learning rate) or its own."""
    said = "; ".join(f"{r.family}: lr {r.lr:g}" + ("" if r.setting == OWN_LOSS else f", {r.setting}")
                     for r in choices.itertuples())
    heat = choices.set_index("family").loc["heatmaps"]
    same = heat.lr == base.lr and not heat.loss_args
    return (f"**Chosen** (lowest validation NME): {said}. "
            + ("The heatmaps' choice is the book's own learning rate, so chapter 13 reads chapter 5's heatmap runs "
               "back." if same else
               f"The heatmaps' choice differs from the book's lr {base.lr:g}, so chapter 13 trains its own heatmap "
               "runs at it; chapters 5, 6, 7 and 14 keep chapter 4's schedule."))


# --- the record --------------------------------------------------------------------------------------


RECORD_DOC = """Run (or read back) chapter 13's schedule search under a profile and store it as data: every
run's validation NME, each family's choice and the provenance. The chapter computes the same
search in every build; the record keeps one build's, for the reader and for a test that holds the
choice rule to it."""


def search_record(search: pd.DataFrame, choices: pd.DataFrame, profile: str) -> dict:
    """The search (:func:`search_study`) and its choices (:func:`choose`) as JSON-ready data, with
    the provenance of the machine that read or trained them."""
    from h3r.provenance import pick_device, provenance

    def runs(frame: pd.DataFrame) -> list[dict]:
        return [{"family": r["family"], "setting": r["setting"], "preset": r["preset"], "lr": r["lr"],
                 "loss_args": dict(r["loss_args"]), "NME (%)": r["NME (%)"]} for r in frame.to_dict("records")]

    return {"profile": profile, "split": VALIDATION, "runs": runs(search), "chosen": runs(choices),
            "computed_at": sorted(set(search.commit)), "provenance": provenance(pick_device("auto"))}


def main(argv=None) -> None:
    import argparse

    from h3r.profiles import PROFILE_NAMES, chapter
    from h3r.provenance import write_json_atomic

    p = argparse.ArgumentParser(prog="python -m h3r.study.search", description=RECORD_DOC,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--profile", choices=PROFILE_NAMES, default="cpu")
    p.add_argument("--json", required=True, help="where to write the record (atomically)")
    args = p.parse_args(argv)
    settings = chapter("other_answers", args.profile)
    search = search_study(settings.base, settings.learning_rates, settings.sigma)
    record = search_record(search, choose(search), args.profile)
    write_json_atomic(args.json, record)
    for row in record["chosen"]:
        print(f"{row['family']}: lr {row['lr']:g}, {row['setting']} (validation NME {row['NME (%)']:.2f} %)")


if __name__ == "__main__":
    main()
