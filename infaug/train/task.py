"""What a method is run on: the split data on its device and the factories of F, G and E.

``build_task`` turns a configuration and a seed into a :class:`Task`, the one object every method
of a run shares, so all of them see the same splits and the same networks' architectures;
``tensor_task`` makes one of a user's own tensors (``infaug.learn_augmenter``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor, nn

from infaug.augmentations import HeuristicAugmentation
from infaug.config import Config
from infaug.data import Digits
from infaug.data.datasets import load_dataset
from infaug.data.splits import Splits, make_splits, stratified_sample
from infaug.data.toy2d import toy2d
from infaug.train.semi import split_unlabelled
from infaug.util.seeds import derive
from infaug.models import MLP, AllConvNet, Encoder, Generator, PointEncoder, TranslationGenerator, resnet56

__all__ = ["Task", "build_task", "check_task", "load_pool", "tensor_task"]

Pair = Tuple[Tensor, Tensor]


@dataclass
class Task:
    kind: str  # "images" or "points"
    train: Pair  # labelled, for F
    validation: Pair
    test: Optional[Pair]  # None: no test split (learn_augmenter given none)
    unlabelled: Tensor  # images for G's GAN, F's semi-supervised training and E's pseudo target (train images included by the caller)
    encoder_rows: Tensor  # rows of ``train`` E trains on
    holdout_rows: Tensor  # rows of ``train`` E never sees
    splits: Splits
    make_classifier: Callable[[], nn.Module]
    make_generator: Callable[[], nn.Module]
    make_encoder: Callable[[], nn.Module]
    heuristic: Callable[[Tensor, torch.Generator], Tensor]
    # rows of ``unlabelled`` F may train on (semi.ratio > 0), and those held out for E's target
    # (encoder.target = "pseudo"): disjoint (infaug.train.semi.split_unlabelled); None: all, none
    semi_rows: Optional[Tensor] = None
    target_rows: Optional[Tensor] = None

    @property
    def shape(self) -> tuple:
        return tuple(self.train[0].shape[1:])

    @property
    def semi_images(self) -> Tensor:
        """The unlabelled images F may train on: never E's target."""
        return self.unlabelled if self.semi_rows is None else self.unlabelled[self.semi_rows]

    @property
    def target_images(self) -> Tensor:
        """The unlabelled images held out for E's target (none for encoder.target = "validation")."""
        return self.unlabelled[:0] if self.target_rows is None else self.unlabelled[self.target_rows]


def _unlabelled_rows(count: int, config: Config, seed: int) -> dict:
    """Task's ``semi_rows`` and ``target_rows`` for an unlabelled pool of ``count`` images."""
    e = config.encoder
    if e.target != "pseudo":
        return {}
    semi_rows, target_rows = split_unlabelled(count, e.target_size, seed)
    return {"semi_rows": semi_rows, "target_rows": target_rows}


def load_pool(config: Config) -> Tuple[Digits, Optional[Digits]]:
    """(the pool of training data, the official test set or None) for ``config.data``; files are
    checked (sizes, checksums) as they are read."""
    data = config.data
    if data.dataset == "toy2d":
        points, labels = toy2d(data.labelled + data.test + max(data.unlabelled, 0), seed=12345)
        return Digits(points, labels), None
    return load_dataset(data.dataset, data.data_dir, image_size=data.image_size, channels=data.channels)


def check_task(task: "Task", config: Config, methods) -> None:
    """Stops before any training when the data cannot go through the networks or the methods:
    a forward pass of one sample through F and G, and the channel counts kornia's policies take."""
    if task.kind != "images":
        return
    shape = task.shape
    if {"trivialaugment", "randaugment"} & set(methods) and shape[0] not in (1, 3):
        raise ValueError(f"data: images of {shape[0]} channels; kornia's policies (trivialaugment, randaugment) take "
                         f"1 or 3: set data.channels = 3, or leave those methods out of run.methods")
    sample = task.train[0][:2]
    with torch.random.fork_rng(devices=[]):  # building the networks here must not move the run's random state
        _forward_check(task, config, sample)


def _forward_check(task: "Task", config: Config, sample: Tensor) -> None:
    shape = task.shape
    for name, make in (("classifier.arch = " + repr(config.classifier.arch), task.make_classifier), ("G", task.make_generator)):
        try:
            with torch.no_grad():
                net = make().eval()
                out = net(sample) if name != "G" else net(sample, net.sample_latent(len(sample)))
        except RuntimeError as error:
            raise ValueError(f"data: images of shape {shape} do not go through {name}: {error}; "
                             "set data.image_size (and data.channels) to a shape it takes") from None
        if name == "G" and out.shape != sample.shape:
            raise ValueError(f"data: G turns images of shape {shape} into {tuple(out.shape[1:])}; set data.image_size")


def build_task(config: Config, seed: int, device: torch.device, pool: Digits, official_test: Optional[Digits]) -> Task:
    data = config.data
    splits = make_splits(
        pool.labels,
        labelled=data.labelled,
        validation=data.validation,
        test=0 if official_test is not None else data.test,
        unlabelled=data.unlabelled,
        holdout=data.encoder_holdout,
        seed=derive(seed, "splits"),
    )

    def take(indices: Tensor) -> Pair:
        return pool.images[indices].to(device), pool.labels[indices].to(device)

    train, validation = take(splits.train), take(splits.validation)
    test = take(splits.test) if official_test is None else (official_test.images.to(device), official_test.labels.to(device))
    if data.dataset == "toy2d" and data.toy_shift:
        validation = (validation[0] - torch.tensor([0.0, data.toy_shift], device=device), validation[1])
    position = {int(i): row for row, i in enumerate(splits.train)}
    encoder_rows = torch.tensor([position[int(i)] for i in splits.encoder_train], dtype=torch.long, device=device)
    holdout_rows = torch.tensor([position[int(i)] for i in splits.encoder_holdout], dtype=torch.long, device=device)
    num_classes = int(pool.labels.max()) + 1
    c, g, e = config.classifier, config.generator, config.encoder

    if data.dataset == "toy2d":
        if c.arch != "mlp":
            raise ValueError(f"config: classifier.arch must be 'mlp' for data.dataset = 'toy2d' (points), got {c.arch!r}")
        scale = data.toy_translation  # translation per unit of tau, and the heuristic's range

        def heuristic(x: Tensor, rng: torch.Generator) -> Tensor:
            return x + scale * (2 * torch.rand(x.shape, generator=rng).to(x) - 1)

        return Task(
            "points", train, validation, test, pool.images[:0].to(device), encoder_rows, holdout_rows, splits,
            lambda: MLP(2, num_classes, c.width).to(device),
            lambda: TranslationGenerator(scale).to(device),
            lambda: PointEncoder(2, 2, 32, e.noise).to(device),
            heuristic,
        )

    channels, height, width = pool.images.shape[1:]
    layout = torch.channels_last if c.channels_last else torch.contiguous_format
    if c.arch == "allconv":
        make_classifier = lambda: AllConvNet(channels, num_classes, c.width).to(device, memory_format=layout)  # noqa: E731
    elif c.arch == "resnet56":
        make_classifier = lambda: resnet56(channels, num_classes).to(device, memory_format=layout)  # noqa: E731
    else:
        raise ValueError(f"config: classifier.arch = {c.arch!r} takes points, not images; use 'allconv' or 'resnet56'")
    return Task(
        "images", train, validation, test, pool.images[splits.unlabelled].to(device), encoder_rows, holdout_rows, splits,
        make_classifier,
        lambda: Generator(channels, height, width, latent=g.latent, spatial_latent=g.spatial_latent,
                          hidden=g.hidden, smooth=g.smooth).to(device),
        lambda: Encoder(channels, g.latent, e.width, e.noise).to(device),
        HeuristicAugmentation(config.heuristic),
        **_unlabelled_rows(len(splits.unlabelled), config, seed),
    )


def tensor_task(model: nn.Module, train: Pair, validation: Pair, test: Optional[Pair], unlabelled: Optional[Tensor],
                config: Config, seed: int) -> Task:
    """A :class:`Task` of images already split: F is ``model`` itself, G and E are built as
    :func:`build_task` builds them for the images' shape, and the share ``data.encoder_holdout`` of
    the training samples (stratified, seeded) is held out from E's training."""
    images, labels = train
    device, (channels, height, width) = images.device, images.shape[1:]
    rows = torch.arange(len(labels))
    holdout, encoder_train = stratified_sample(labels.cpu(), rows, round(config.data.encoder_holdout * len(labels)),
                                               torch.Generator().manual_seed(derive(seed, "splits")))
    if len(encoder_train) == 0:
        raise ValueError(f"data.encoder_holdout = {config.data.encoder_holdout} leaves none of the {len(labels)} training samples for E")
    unlabelled = images[:0] if unlabelled is None else unlabelled.to(device)
    splits = Splits(rows, torch.arange(len(validation[1])), torch.arange(len(unlabelled)),
                    None if test is None else torch.arange(len(test[1])), encoder_train, holdout)
    g, e = config.generator, config.encoder
    return Task(
        "images", train, validation, test, unlabelled, encoder_train.to(device), holdout.to(device), splits, lambda: model,
        lambda: Generator(channels, height, width, latent=g.latent, spatial_latent=g.spatial_latent, hidden=g.hidden,
                          smooth=g.smooth).to(device),
        lambda: Encoder(channels, g.latent, e.width, e.noise).to(device),
        HeuristicAugmentation(config.heuristic),
        **_unlabelled_rows(len(unlabelled), config, seed),
    )
