"""What a run is: its :class:`Config`, the codec presets it names, its folder and its key.

Torch-free, so that the command line, the profiles and a notebook's parameters are read without
loading torch.

``PRESETS``     codec preset name -> :class:`Preset`: the codec class and arguments, and the facts
                the rest of h3r asks of it (the loss it trains with, its head, whether it takes a
                Gaussian's sigma, which target its target error decodes)
``Config``      everything a run depends on; :meth:`Config.key` hashes it with the code
``RunFolder``   the files of one run folder and whether the run has finished

A run is keyed by its config and by :func:`code_fingerprint`: a hash of every h3r module that
the training entry point :mod:`h3r.train` imports, directly or not. A module that computes a
run's numbers is imported by it, so it is covered by construction; the modules that only present
numbers (the study, the figures, the book) are not, so editing them keeps every run valid.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
#: the losses over a 2-channel (background, foreground) head; every other loss reads one map per keypoint
BINARY_LOSSES = ("binary_ce", "foreground_ce")
#: what a network's head outputs (:mod:`h3r.models.heads`): K maps; 2K maps as (background,
#: foreground); a SimCC pair of per-axis logit vectors; K x 4 regressed numbers (mu, sigma)
HEADS = ("heatmap", "binary", "simcc", "regression")


@dataclass(frozen=True)
class Preset:
    """A codec preset: the codec class (by its ``name``, a key of :data:`h3r.codecs.CODECS`) with
    its arguments, and its facts."""

    codec: str
    args: dict = field(default_factory=dict)
    loss: str = "mse"  # the loss it trains with unless a config names another
    head: str = "heatmap"  # the head it trains and decodes, one of HEADS ("binary" exactly for BINARY_LOSSES)
    sigma: bool = False  # its target or its decoder is a Gaussian whose sigma (cells) a study may set
    target: str = "encode"  # what its target error decodes: its target, or "expected" where the codec draws it

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if (self.head == "binary") != (self.loss in BINARY_LOSSES):
            raise ValueError(f"the binary head goes with the binary losses {BINARY_LOSSES} and only with them; "
                             f"got head {self.head!r} with loss {self.loss!r}")


#: preset name -> :class:`Preset`: the names the book, the command line and
#: :func:`h3r.codecs.build_codec` use. Each codec's file declares its presets
#: (:func:`h3r.codecs.base.register_codec`); those of h3r's own codecs are read here from the files,
#: without importing torch, and a codec module imported later adds its own.
PRESETS: dict[str, Preset] = {}


def register_presets(codec: str, head: str, presets: dict[str, dict]) -> None:
    """Add ``presets`` (preset name -> its facts: ``args``, ``loss``, ``sigma``, ``target``) of the
    codec class ``codec``, whose network head is ``head`` ("binary" instead where the preset's
    loss is binary), to :data:`PRESETS`; a name registered with other facts is an error."""
    for name, facts in presets.items():
        loss = facts.get("loss", "mse")
        made = Preset(codec, **facts, head="binary" if loss in BINARY_LOSSES else head)
        if PRESETS.get(name, made) != made:
            raise ValueError(f"preset {name!r} is registered twice with different facts: {PRESETS[name]} and {made}")
        PRESETS[name] = made


def _declared_presets(source: Path) -> list[tuple[str, str, dict]]:
    """``(codec name, head, presets)`` of every class of the codec file ``source`` decorated with
    ``register_codec(presets={...})``: its ``name``, its ``head`` (default "heatmap") and the literal
    presets, read from the source, not imported."""
    found = []
    for node in ast.parse(source.read_text()).body:
        if not isinstance(node, ast.ClassDef):
            continue
        calls = [d for d in node.decorator_list
                 if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "register_codec"]
        if not calls:
            continue
        attrs = {t.id: ast.literal_eval(a.value) for a in node.body if isinstance(a, ast.Assign)
                 for t in a.targets if isinstance(t, ast.Name) and t.id in ("name", "head")}
        presets = next((ast.literal_eval(k.value) for k in calls[0].keywords if k.arg == "presets"), {})
        found.append((attrs["name"], attrs.get("head", "heatmap"), presets))
    return found


def codec_files() -> list[Path]:
    """h3r's codec modules in the book's order (``BOOK_ORDER`` of ``h3r/codecs/__init__.py``, read
    without importing it), then any other module of the folder, by name."""
    folder = PACKAGE / "codecs"
    order = next(ast.literal_eval(n.value) for n in ast.parse((folder / "__init__.py").read_text()).body
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "BOOK_ORDER")
    others = sorted(p.stem for p in folder.glob("*.py") if p.stem not in order and not p.stem.startswith("_"))
    return [folder / f"{stem}.py" for stem in (*order, *others)]


def _register_own_presets() -> None:
    """:data:`PRESETS` of h3r's own codecs, read from their files (:func:`codec_files`)."""
    for source in codec_files():
        for codec, head, presets in _declared_presets(source):
            register_presets(codec, head, presets)


_register_own_presets()


def preset(name: str) -> Preset:
    """The :class:`Preset` called ``name``, or an error listing them."""
    if name not in PRESETS:
        raise ValueError(f"unknown codec preset {name!r}; the presets are {sorted(PRESETS)}")
    return PRESETS[name]


def heatmap_presets() -> list[str]:
    """The presets whose network outputs heatmaps (head ``"heatmap"`` or ``"binary"``), in
    :data:`PRESETS`' order: the codecs a heatmap's quantization concerns."""
    return [name for name, p in PRESETS.items() if p.head in ("heatmap", "binary")]


def preset_args(name: str, sigma: float | None) -> dict:
    """A study's arguments for preset ``name``: ``{"sigma": sigma}`` where the preset takes one
    (:attr:`Preset.sigma`) and ``sigma`` is given, else ``{}`` (the preset's own)."""
    return {"sigma": sigma} if preset(name).sigma and sigma is not None else {}


@dataclass(frozen=True)
class RunFolder:
    """The files of one run folder, named once::

        checkpoint.pt    model, optimiser, scheduler and progress, written atomically every epoch
        metrics.jsonl    one line per epoch (loss, learning rate, images/s, and evaluation if run)
        predictions.pt   the final evaluation's predictions
        results.json     the final evaluation with its provenance; written last, it marks the run finished
        eval-<key>.json  a later evaluation of the same network (another decoder, split, ...), and its .pt
    """

    path: Path

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.pt"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    def evaluation(self, key: str) -> Path:
        return self.path / f"eval-{key}.json"

    def read_results(self) -> dict | None:
        """The stored results, or None where there are none; a damaged file is an error that says
        what to do."""
        if not self.results.exists():
            return None
        try:
            return json.loads(self.results.read_text())
        except ValueError as err:
            raise RunFolderError(f"{self.results} is damaged ({err}); delete it to train the run again") from None

    def finished(self, key: str) -> bool:
        """Whether the run has results of ``key`` (its config and code, :meth:`Config.key`)."""
        try:
            return (self.read_results() or {}).get("key") == key
        except RunFolderError:
            return False


class RunFolderError(RuntimeError):
    """A file of a run folder cannot be read."""


@dataclass
class Config:
    """Everything a run depends on. ``None``/``"auto"`` fields take the documented default."""

    # data
    dataset: str = "synthetic_faces"  # a name of h3r.data.registry.available_datasets()
    data_root: str | None = None  # folder of the real datasets (default: $H3R_DATA_ROOT or ./data)
    train_split: str = "train"  # the dataset split trained on
    test_split: str = "test"  # the split evaluated at the end
    train_samples: int = 4000  # length of the synthetic training set (ignored by real datasets)
    test_samples: int = 500  # length of the synthetic test set
    fresh_samples: bool = True  # synthetic training data: new samples every epoch (False: one set, seen every epoch)
    input_size: int = 128  # input side in pixels
    box: str = "P2"  # face crops: "P1" (ground-truth landmark box) or "P2" (dataset box)
    augment: bool = True  # real datasets: random rotation, scale, shift, flip, colour
    # model
    backbone: str = "mobilenet_v2"  # "hrnet_w18", "hrnet_w32", "mobilenet_v2" or "plain_cnn"
    width_mult: float = 1.0  # width multiplier of MobileNetV2 and the plain CNN
    head_width: int = 0  # the head's hidden channels (0: the backbone's, as the official head)
    pretrained: str | None = None  # a local ImageNet checkpoint for the backbone (never downloaded)
    # codec and loss
    preset: str = "h3r"  # a codec preset of h3r.config.PRESETS: the codec, its arguments, loss and head
    codec_args: dict = field(default_factory=dict)  # overrides of the preset's codec arguments, e.g. {"k": 4}
    heatmap_stride: int = 4  # input pixels per heatmap cell: 1, 2, 4, 8, 16 or 32
    loss: str = "auto"  # "auto": the preset's loss
    loss_args: dict = field(default_factory=dict)  # options of the loss, e.g. {"pos_weight": 10}
    draw: str = "fresh"  # randomized rounding: "fresh" every time a sample is seen, or "fixed" once per sample
    # optimisation
    optimizer: str = "adam"  # "adam" or "adamw"
    lr: float = 1e-3  # initial learning rate
    weight_decay: float = 0.0  # (decoupled for adamw)
    epochs: int = 10  # passes over the training set
    schedule: str = "multistep"  # "multistep" (lr_milestones, lr_gamma), "cosine" or "onecycle"
    lr_milestones: list = field(default_factory=lambda: [0.7, 0.9])  # fractions of training
    lr_gamma: float = 0.1  # learning-rate factor at each milestone
    warmup: float = 0.0  # fraction of training with a linear warm-up from 0 ("cosine", "onecycle")
    batch_size: int = 32  # images per step (per GPU under DDP)
    # evaluation
    flip_test: bool = True  # average with the mirrored image's prediction
    score_mode: str = "foreground"  # binary head: "foreground" (official) or "log_odds"
    eval_every: int = 0  # also evaluate every n epochs (0: only at the end), on eval_samples, no flip test
    eval_samples: int = 100  # test samples of the per-epoch evaluations
    max_steps: int = 0  # stop after this many optimizer steps and evaluate on as many batches (0: no cap)
    # runtime (not part of the run's identity)
    seed: int = 0  # seeds data order, augmentation, rounding draws and initialisation
    device: str = "auto"  # "auto" (CUDA if available), "cpu", "cuda", "cuda:1"
    amp: bool = True  # bf16 autocast on CUDA
    channels_last: bool = True  # memory format of network and images (also on the CPU: faster convolutions)
    workers: int = 2  # DataLoader worker processes (0 with a render cache: batches straight from memory)
    threads: int = 0  # torch intra-op threads (0: torch's default, one per core)
    out_dir: str = "runs"  # where run folders are written
    render_cache: bool = True  # synthetic data: render each sample once, reuse it across runs
    name: str = ""  # run folder name (default: dataset-preset-stride-<config hash>)
    resume: bool = True  # continue from the run's checkpoint if there is one
    progress: bool = True  # progress bars

    RUNTIME_FIELDS = ("device", "amp", "channels_last", "workers", "threads", "out_dir", "render_cache", "name",
                      "resume", "progress")

    @property
    def resolved_loss(self) -> str:
        return self.loss if self.loss != "auto" else preset(self.preset).loss

    @property
    def head(self) -> str:
        """``"binary"`` where the loss is one of :data:`BINARY_LOSSES`, else the preset's head."""
        if self.resolved_loss in BINARY_LOSSES:
            return "binary"
        head = preset(self.preset).head
        return "heatmap" if head == "binary" else head

    def identity(self) -> dict:
        """The fields that change a run's result: not the runtime ones, nor ``data_root`` for a
        synthetic dataset, which reads nothing from it."""
        ignored = self.RUNTIME_FIELDS + (("data_root",) if self.dataset.startswith(SYNTHETIC_PREFIX) else ())
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ignored}

    def key(self) -> str:
        """A short hash of every field that changes the result (:meth:`identity`) and of the code
        that computes it (:func:`code_fingerprint`): a run trained by other code is another run."""
        identity = {**self.identity(), "code": code_fingerprint()}
        return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def eval_options(self) -> dict:
        """How :func:`h3r.evaluation.evaluate_model` evaluates this run."""
        return dict(batch_size=self.batch_size, flip_test=self.flip_test, score_mode=self.score_mode,
                    progress=self.progress, workers=self.workers)

    def run_dir(self) -> Path:
        return Path(self.out_dir) / (self.name or f"{self.dataset}-{self.preset}-s{self.heatmap_stride}-{self.key()}")

    @property
    def folder(self) -> RunFolder:
        """The run's folder and its files (:class:`RunFolder`)."""
        return RunFolder(self.run_dir())

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """The config of ``values`` (a run folder's, a checkpoint's), its fields named as before a
        rename (:data:`RENAMED_FIELDS`) read under their new names."""
        values = {RENAMED_FIELDS.get(k, k): v for k, v in values.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; the fields are {sorted(known)}")
        return cls(**values)


#: fields of :class:`Config` renamed since run folders were written (old name -> new): ``codec``
#: held a preset's name, not a codec's, and became ``preset``
RENAMED_FIELDS = {"codec": "preset"}

#: the synthetic benchmarks' names begin so (h3r.data.registry.SYNTHETIC); they read no data_root
SYNTHETIC_PREFIX = "synthetic_"

# --- the code a run's numbers come from -------------------------------------------------------------

#: the module whose imports, followed to the end, are the code that computes a run's numbers
NUMBER_ROOT = "h3r.train"


def _module_file(module: str) -> Path | None:
    """The source file of an ``h3r`` module or package, or None where there is none."""
    parts = module.split(".")[1:]
    candidates = [PACKAGE.joinpath(*parts, "__init__.py")]
    if parts:
        candidates.insert(0, PACKAGE.joinpath(*parts).with_suffix(".py"))
    return next((path for path in candidates if path.is_file()), None)


def _h3r_imports(path: Path) -> set[str]:
    """The ``h3r`` modules a source file imports anywhere (inside functions too), with the packages
    above each, which Python runs first."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "h3r" or name.startswith("h3r."):
                parts = name.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {name for name in found if _module_file(name) is not None}


@functools.cache
def number_modules(root: str = NUMBER_ROOT) -> tuple[str, ...]:
    """Every ``h3r`` module that ``root`` imports, directly or through others, ``root`` included."""
    seen, todo = set(), [root]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += sorted(_h3r_imports(_module_file(module)) - seen)
    return tuple(sorted(seen))


@functools.cache
def code_fingerprint() -> str:
    """A short hash of the sources of :func:`number_modules`, independent of git: a run keyed by it
    is never reused by code that would compute something else."""
    digest = hashlib.sha1()
    for module in number_modules():
        path = _module_file(module)
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def presets_table(names=None):
    """A DataFrame of the codec presets (:data:`PRESETS`, or those of ``names``): what each trains and
    decodes with, the names ``h3r train --preset`` takes. Columns: codec class, its arguments, loss,
    head, and whether a study sets its Gaussian's sigma."""
    import pandas as pd

    names = list(PRESETS) if names is None else list(names)
    return pd.DataFrame({"codec": [PRESETS[n].codec for n in names],
                         "arguments": [", ".join(f"{k}={v}" for k, v in PRESETS[n].args.items()) for n in names],
                         "loss": [PRESETS[n].loss for n in names], "head": [PRESETS[n].head for n in names],
                         "sigma": ["✓" if PRESETS[n].sigma else "" for n in names]},
                        index=pd.Index(names, name="preset"))
