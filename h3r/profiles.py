"""Profiles: the settings every chapter of the book runs with, in one place.

``smoke``  seconds per notebook; the stored outputs that ``pytest --nbval`` checks.
``cpu``    the default of the book: the full analysis, and learned results at a size 2 CPU cores
           finish in minutes.
``paper``  the paper's settings, for a GPU and the real datasets.

:data:`BASE` is the training setup the learned chapters share per profile, so that a run one
chapter trains is found again by the next; :data:`CHAPTERS` holds each chapter's own settings. A
notebook's set-up is one call (:func:`open_chapter`: it also moves to the repository root and
sets the book's style), with its papermill parameters as overrides (``None``: the profile's
value)::

    cfg = open_chapter("heatmap_resolution", profile, strides=strides, seeds=seeds, device=device)
    cfg.strides, cfg.base, cfg.device    # settings, the training Config, the torch device

An override must name a setting of the chapter and have its type; strings are read as Python
literals where the profile holds a number, list or bool (``papermill -p strides "[2, 4]"``).
Settings that name a :class:`~h3r.config.Config` field (``device``, ``input_size``, ``epochs``,
``dataset``, ...) also set it in ``cfg.base``.
"""
from __future__ import annotations

import ast
import dataclasses
import os
from types import SimpleNamespace

from h3r.config import Config

PROFILE_NAMES = ("smoke", "cpu", "paper")
DEFAULT_PROFILE = "cpu"

#: Runs live under ``$H3R_RUNS/<profile>`` (default ``runs/``).
RUNS = os.environ.get("H3R_RUNS", "runs")
BASE = {
    # seconds: just enough to exercise the whole pipeline (CI and nbval); one thread per run, so
    # that the stored outputs do not depend on the machine's cores
    "smoke": Config(dataset="synthetic_faces", input_size=32, train_samples=32, test_samples=16, epochs=1,
                    batch_size=16, backbone="mobilenet_v2", width_mult=0.5, lr=3e-3, eval_every=1, workers=0,
                    threads=1, progress=False, out_dir=f"{RUNS}/smoke"),
    # the book on 2 CPU cores: a plain CNN chosen for CPU speed (the same for every codec) at 64 px,
    # 8 epochs of 1200 fresh faces read as batches from the render cache, one thread per run (two
    # runs side by side use both cores: h3r.runs.run_grid); the schedule is chapter 4's choice
    "cpu": Config(dataset="synthetic_faces", input_size=64, train_samples=1200, test_samples=300, epochs=8,
                  batch_size=16, backbone="plain_cnn", head_width=64, lr=1.2e-2, schedule="cosine", warmup=0.1,
                  eval_every=1, workers=0, threads=1, progress=False, out_dir=f"{RUNS}/cpu"),
    # the paper's network and resolution, on a GPU: HRNet-W18 at 256 px
    "paper": Config(dataset="synthetic_faces", input_size=256, train_samples=10_000, test_samples=2_000,
                    epochs=60, lr_milestones=[0.5, 0.83], batch_size=16, backbone="hrnet_w18", lr=1e-3, eval_every=1,
                    workers=8, device="auto", progress=False, out_dir=f"{RUNS}/paper"),
}
#: the seeds of the learned chapters (whose runs the next chapters read back). Smoke trains one:
#: one seed gives no interval, so a smoke verdict reads "within noise" whatever the machine's last
#: digits (two seeds' 95 % interval is ±12.7 times their half-difference, and a bound near 0
#: crossed 0 on another instruction set)
SEEDS = {"smoke": [0], "cpu": [0, 1, 2], "paper": [0, 1, 2]}


def _per_profile(**values) -> dict[str, dict]:
    """The same settings under every profile (a value may be a {profile: value} dict)."""
    return {name: {k: v[name] if isinstance(v, dict) and set(v) == set(PROFILE_NAMES) else v
                   for k, v in values.items()} for name in PROFILE_NAMES}


def _by_profile(smoke, cpu, paper) -> dict:
    return {"smoke": smoke, "cpu": cpu, "paper": paper}


#: the resolution study's strides (chapter 5), whose runs chapters 4, 6, 7, 13 and 14 read again
CHAPTER_STRIDES = _by_profile([4, 8], [2, 4, 8, 16], [2, 4, 8, 16])
#: chapter 7's input sizes (heatmap stride 4), which the findings read back
COST_INPUT_SIZES = _by_profile([32, 64], [32, 48, 64], [128, 160, 256])
#: the seeds and strides of chapter 5's as-published codecs outside the matched families (cpu: one
#: seed at strides 4 and 8, for time: they enter no paired comparison)
PUBLISHED_SEEDS = _by_profile([0], [0], [0, 1, 2])
PUBLISHED_STRIDES = _by_profile([4, 8], [4, 8], [2, 4, 8, 16])
#: chapter 6's seeds of its target and head ablations, whose two-channel runs chapter 14 reads back
ABLATION_SEEDS = _by_profile([0], [0], [0, 1, 2])
#: chapter 13's strides (heatmap strides, and SimCC bin widths in pixels): chapter 5's, whose runs it
#: reads back; the paper profile's are the paper's stride 4 and one coarser (SimCC's default joins them)
ANSWER_STRIDES = _by_profile([4, 8], [2, 4, 8, 16], [4, 8])
#: chapter 13's schedule search: the learning rates every family trains with (cpu: the book's 1.2e-2,
#: chapter 4's choice for heatmaps, and a factor of sqrt(10) either side; paper: around its 1e-3)
ANSWER_LEARNING_RATES = _by_profile([3e-3, 1e-2], [1.2e-3, 3.8e-3, 1.2e-2, 3.8e-2], [3e-4, 1e-3, 3e-3, 1e-2])
#: chapter 15's strides on the pose benchmark (at 64 px, heatmaps of 32² to 8² cells: at stride 16
#: a 4² map leaves DARK's refinement nothing to work on, chapter 5 shows it)
POSE_STRIDES = _by_profile([4, 8], [2, 4, 8], [2, 4, 8, 16])
#: the training batch of each profile, a setting of every chapter that trains (lower it for a
#: smaller GPU; the paper-profile check trains with 2)
BATCH = {name: config.batch_size for name, config in BASE.items()}
#: the Gaussian targets' sigma in heatmap cells: the field's 2 at 256 px; at 64 px a Gaussian of 2
#: cells spans a third of the inter-ocular distance and trains far slower (chapter 4 measures it)
CHAPTER_SIGMA = _by_profile(1.0, 1.0, 2.0)

#: chapter -> profile -> settings (the names of the notebook's papermill parameters)
CHAPTERS: dict[str, dict[str, dict]] = {
    "quantization_error": _per_profile(
        input_size=256, strides=_by_profile([4, 16], [1, 2, 4, 8, 16, 32], [1, 2, 4, 8, 16, 32]),
        n_points=_by_profile(4_000, 100_000, 2_000_000), cell_budget=_by_profile(2**22, 2**26, 2**32),
        draws=_by_profile(200, 4_000, 40_000), seed=0, device="auto",
        nme_strides=_by_profile([4, 16], [2, 4, 8, 16], [2, 4, 8, 16]), data_root=None,
        synthetic_faces=_by_profile(32, 200, 2_000)),
    "unbiasedness": _per_profile(
        input_size=256, stride=4, n_points=_by_profile(64, 256, 4_096),
        max_draws=_by_profile(1024, 4_096, 262_144), seed=0, device="auto"),
    "codecs": _per_profile(
        input_size=256, stride=4, batch=_by_profile(4, 64, 64), keypoints=_by_profile(8, 98, 98),
        heatmap=_by_profile(16, 64, 64), repeats=_by_profile(2, 10, 50), seed=0, device="auto"),
    "synthetic_benchmark": _per_profile(max_steps=0, batch_size=BATCH, device="auto"),
    "heatmap_resolution": _per_profile(
        strides=CHAPTER_STRIDES, seeds=SEEDS, as_published=True,
        published_seeds=PUBLISHED_SEEDS, published_strides=PUBLISHED_STRIDES, sigma=CHAPTER_SIGMA,
        dataset="synthetic_faces", data_root="", max_steps=0, batch_size=BATCH, device="auto"),
    # chapter 5's design on the pose benchmark; UDP, its one published codec beside the families, with
    # every seed and stride, since the pose chapter pairs H3R with it
    "human_pose": _per_profile(
        strides=POSE_STRIDES, seeds=SEEDS, as_published=["udp"], published_seeds=SEEDS,
        published_strides=POSE_STRIDES, sigma=CHAPTER_SIGMA, dataset="synthetic_pose", data_root="",
        max_steps=0, batch_size=BATCH, device="auto"),
    "ablations": _per_profile(
        ks=_by_profile([1, 4, 9], [1, 2, 4, 9, 16, 25], [1, 2, 4, 9, 16, 25]),
        windows=_by_profile([1], [1, 2], [1, 2]),
        study_strides=CHAPTER_STRIDES, study_seeds=SEEDS,  # chapter 5's H3R networks
        ablation_stride=4, ablation_seeds=ABLATION_SEEDS, sigma=1.0, max_steps=0,
        batch_size=BATCH, device="auto"),
    "cost": _per_profile(
        input_sizes=COST_INPUT_SIZES, seeds=SEEDS, sigma=CHAPTER_SIGMA,
        max_steps=0, batch_size=BATCH, device="auto"),
    "benchmarks": _per_profile(
        datasets=["wflw", "300w", "cofw", "aflw", "mpii", "coco"], data_root="", codecs=["argmax-round", "h3r"],
        seeds=_by_profile([0], [0, 1, 2], [0, 1, 2]), max_steps=0, batch_size=BATCH, device="auto"),
    # smoke looks for nothing on disk, so that its stored outputs are the same on every machine
    "official": _per_profile(
        weights_dir=_by_profile("", "official", "official"), data_root=_by_profile("", "data", "data"),
        results_dir=_by_profile("", "runs/official", "runs/official"), evaluate=_by_profile(False, False, True),
        device="auto"),
    "reproduce": _per_profile(data_root=None, device="auto"),
    "your_own_loop": _per_profile(steps=_by_profile(20, 200, 200), device="auto"),
    "other_answers": _per_profile(
        strides=ANSWER_STRIDES, seeds=SEEDS, sigma=CHAPTER_SIGMA, learning_rates=ANSWER_LEARNING_RATES,
        decode_batch=_by_profile(8, 64, 64),
        max_steps=0, batch_size=BATCH, device="auto"),
    # the ablation stride of chapter 6, chapter 5's strides (the expected target's), seeds and sigma
    "questions": _per_profile(stride=4, strides=CHAPTER_STRIDES, seeds=SEEDS, sigma=CHAPTER_SIGMA,
                              two_channel_seeds=ABLATION_SEEDS, max_steps=0, batch_size=BATCH, device="auto"),
    "findings": _per_profile(strides=CHAPTER_STRIDES, seeds=SEEDS, sigma=CHAPTER_SIGMA, published_seeds=PUBLISHED_SEEDS,
                             answer_strides=ANSWER_STRIDES, answer_learning_rates=ANSWER_LEARNING_RATES,
                             pose_strides=POSE_STRIDES,
                             published_strides=PUBLISHED_STRIDES, input_sizes=COST_INPUT_SIZES,
                             cost_seeds=SEEDS, max_steps=0, batch_size=BATCH, device="auto"),
}


class ParameterError(ValueError):
    """A notebook parameter (papermill ``-p``) has a wrong name, type or value."""


def resolve(profiles: dict, profile: str, **overrides) -> SimpleNamespace:
    """The settings of ``profile`` in ``profiles`` (profile -> settings) with the non-None
    ``overrides`` applied, checked (see the module docstring). Returns a namespace with
    ``profile`` and every setting."""
    if profile not in profiles:
        raise ParameterError(f"unknown profile {profile!r}; this notebook has profiles {sorted(profiles)}")
    settings = dict(profiles[profile])
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in settings:
            raise ParameterError(f"parameter {name!r} is not a setting of this notebook; "
                                 f"its settings are {sorted(settings)}")
        settings[name] = _coerce(name, value, settings[name])
    return SimpleNamespace(profile=profile, **settings)


def chapter(name: str, profile: str, **overrides) -> SimpleNamespace:
    """A chapter's settings under ``profile`` (:func:`resolve` over :data:`CHAPTERS`), plus
    ``base`` (the profile's training :class:`~h3r.config.Config` with the settings that name one of
    its fields applied) and ``device`` (the torch device ``device`` resolves to)."""
    from h3r.provenance import pick_device

    if name not in CHAPTERS:
        raise ParameterError(f"unknown chapter {name!r}; the chapters are {sorted(CHAPTERS)}")
    cfg = resolve(CHAPTERS[name], profile, **overrides)
    fields = {f.name for f in dataclasses.fields(Config)}
    changes = {k: v for k, v in vars(cfg).items() if k in fields and v not in (None, "")}
    cfg.base = dataclasses.replace(BASE[profile], **changes)
    cfg.device = pick_device(getattr(cfg, "device", "auto") or "auto")
    return cfg


def open_chapter(name: str, profile, **overrides) -> SimpleNamespace:
    """A notebook's one set-up call: :func:`chapter`'s settings, with the working folder moved to
    the repository root (Jupyter and nbval start a notebook in ``notebooks/``; ``data/`` and
    ``runs/`` are the root's) and the book's figure and table style applied
    (:func:`h3r.viz.book_style`).

    ``profile`` may be the notebook's namespace (``open_chapter("cost", globals())``): its
    ``profile`` and the values it holds of the chapter's settings (its parameters cell's) are
    taken, so that each parameter is written once, in that cell."""
    from collections.abc import Mapping
    from pathlib import Path

    from h3r.viz import book_style

    if isinstance(profile, Mapping):
        namespace, profile = profile, profile.get("profile")
        declared = CHAPTERS.get(name, {}).get(profile, {})
        overrides = {k: namespace[k] for k in declared if k in namespace} | overrides
    if Path.cwd().name == "notebooks" and (Path.cwd().parent / "notebooks").is_dir():
        os.chdir("..")
    cfg = chapter(name, profile, **overrides)
    book_style()
    return cfg


#: the settings of a chapter that trains which another chapter that reads its runs carries over
TRAINING_SETTINGS = ("max_steps", "batch_size", "device")


def reading(name: str, cfg: SimpleNamespace, **overrides) -> SimpleNamespace:
    """The settings of chapter ``name`` as the chapter of ``cfg`` reads its runs: ``cfg``'s profile
    and training settings (:data:`TRAINING_SETTINGS`, so that a step cap or a batch reaches them)
    with ``overrides`` (``None``: chapter ``name``'s value)."""
    carried = {k: getattr(cfg.base, k) for k in TRAINING_SETTINGS if k in CHAPTERS[name][cfg.profile]}
    return chapter(name, cfg.profile, **(carried | overrides))


def _coerce(name: str, value, like):
    if like is None:
        return value
    if isinstance(value, str) and not isinstance(like, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ParameterError(f"parameter {name!r}: cannot read {value!r} as a {type(like).__name__}") from None
    if isinstance(like, bool):
        ok = isinstance(value, bool)
    elif isinstance(like, (int, float)):
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and (isinstance(like, float) or float(value).is_integer()))
    elif isinstance(like, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = isinstance(value, type(like))
    if not ok:
        raise ParameterError(f"parameter {name!r} must be a {type(like).__name__} like {like!r}, got {value!r}")
    return type(like)(value) if isinstance(like, (int, float, list, tuple)) and not isinstance(like, bool) else value


def provenance_note(cfg: SimpleNamespace, data: str, device: str = "cpu", seeds=None, computed_at=None, **extra):
    """A Markdown line stating where the numbers above come from (profile, data, device, seeds,
    commit), for display under every table and figure of the book.

    ``computed_at`` holds the commits the numbers were computed at (a run table's ``commit``
    column): runs trained earlier are read back while the code that computes them is unchanged
    (:meth:`h3r.config.Config.key`), so a build may show numbers of older commits; the line then
    names them, in bold, beside the build's own.
    """
    from IPython.display import Markdown

    from h3r.provenance import provenance

    p = provenance(device)
    seeds = seeds if seeds is not None else getattr(cfg, "seeds", [getattr(cfg, "seed", "-")])
    parts = [f"profile **{cfg.profile}**", f"data: {data}", f"device: {p['device']}",
             f"seeds: {', '.join(map(str, seeds)) if isinstance(seeds, (list, tuple)) else seeds}",
             *(f"{k}: {v}" for k, v in extra.items()), commit_line(p["commit"], computed_at), f"torch {p['torch']}"]
    return Markdown("*Provenance* — " + " · ".join(parts))


def commit_line(build: str, computed_at=None) -> str:
    """``commit <build>``, or, where numbers were computed at other commits, all of them in bold."""
    commits = sorted({str(c) for c in computed_at}) if computed_at is not None else [build]
    if commits in ([build], []):
        return f"commit {build}"
    return f"**numbers computed at commit {', '.join(commits)}; this build is commit {build}**"
