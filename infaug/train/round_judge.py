"""E's step judged by a round of F's training: :func:`choose_shrink_by_round` (``encoder.shrink`` with
several factors).

The influence function predicts the effect of an augmentation at F's current weights; E, trained
to minimise that prediction, can move to where it no longer holds. Here each candidate step is
measured by what the loop does with it: for each factor a, E's mean is scaled by a (a = 0: G's
prior), F trains the round's epochs on originals plus those augmentations, and its validation loss
is measured. Every candidate starts from the same F (weights, optimiser, schedule) and the same
random states, so they differ only in a; the lowest validation loss wins, and F goes on from where
that candidate's round left it (its round is not trained again). :func:`choose_round` is the
selection itself, for any set of candidates.

The cost is ``len(factors) - 1`` more rounds of F's training per round, which the method's time
includes.

Example (a tiny F, E and G; one epoch of F per candidate):
    >>> import torch
    >>> from infaug.models import AllConvNet, Encoder, Generator
    >>> from infaug.train.classifier import ClassifierTrainer
    >>> _ = torch.manual_seed(0)
    >>> model, encoder = AllConvNet(1, 10, width=4), Encoder(1, latent=8, width=4, noise=1.0)
    >>> generator = Generator(1, 12, 12, latent=8, spatial_latent=5, hidden=4)
    >>> x, y = torch.rand(40, 1, 12, 12), torch.arange(40) % 10
    >>> trainer = ClassifierTrainer(model, total_epochs=1, steps_per_epoch=2, lr=1e-2, weight_decay=0.0, damping=0.01)
    >>> batches, noise = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    >>> augment = lambda images, rng: generator(images, encoder(images, generator=rng))
    >>> train_round = lambda: trainer.train(x, y, 1, augment=augment, batch_size=20, generator=batches, augment_rng=noise)
    >>> best, losses, finish = choose_shrink_by_round(encoder, trainer, (x[:20], y[:20]), [0.0, 1.0], train_round,
    ...                                               {"batches": batches, "noise": noise})
    >>> best == [0.0, 1.0][losses.index(min(losses))], trainer.epochs_done
    (True, 0)
    >>> finish(); trainer.epochs_done
    1
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import nn

from infaug import distributed
from infaug.train.checkpoint import rng_states, set_rng_states
from infaug.train.classifier import ClassifierTrainer, evaluate
from infaug.train.encoder import mean_scaler

__all__ = ["choose_round", "choose_shrink_by_round"]


def choose_round(
    trainer: ClassifierTrainer,
    validation: tuple,
    setups: Sequence[Callable[[], None]],
    train_round: Callable[[], object],
    generators: dict[str, torch.Generator],
) -> tuple[int, list[float], Callable[[], None]]:
    """Returns (the index of the chosen candidate, the validation loss after each candidate's
    round, ``finish``).

    For each candidate, from the same F (weights, optimiser, schedule) and the same states of
    ``generators`` (name -> generator: every generator ``train_round`` draws from besides torch's
    global one), ``setups[k]()`` prepares candidate k and ``train_round()`` trains F through the
    round; the lowest validation loss wins (the first of equal ones). On return F and the
    generators are as they were on entry, so that what is measured at the round's start can still
    be measured; ``finish()`` moves them to the end of the chosen candidate's round. What a setup
    changes outside F and the generators (E's mean) is the caller's to set to the chosen one.
    """
    if not setups:
        raise ValueError("setups: expected at least one candidate, got none")
    start = copy.deepcopy(trainer.state_dict())
    start_rng = rng_states(**generators)
    losses, ends = [], []
    for setup in setups:
        setup()
        train_round()
        ends.append((copy.deepcopy(trainer.state_dict()), rng_states(**generators)))
        losses.append(evaluate(trainer.model, *validation)[0])
        trainer.load_state_dict(copy.deepcopy(start))
        set_rng_states(start_rng, **generators)
    # Every rank chooses by rank 0's losses (the same up to the reduction order of each rank's
    # evaluation), so that a near tie cannot split the ranks.
    losses = distributed.all_gather_objects(losses)[0]
    best = losses.index(min(losses))

    def finish() -> None:
        trainer.load_state_dict(ends[best][0])
        set_rng_states(ends[best][1], **generators)

    return best, losses, finish


def choose_shrink_by_round(
    encoder: nn.Module,
    trainer: ClassifierTrainer,
    validation: tuple,
    factors: Sequence[float],
    train_round: Callable[[], object],
    generators: dict[str, torch.Generator],
) -> tuple[float, list[float], Callable[[], None]]:
    """Returns (the chosen factor, the validation loss after each candidate's round, ``finish``):
    :func:`choose_round` with candidate a = E's mean scaled by a. On return E's mean is scaled by
    the chosen factor, and F and the generators are as :func:`choose_round` leaves them.
    """
    factors = [float(a) for a in factors]
    if not factors:
        raise ValueError("factors: expected at least one factor, got none")
    scale = mean_scaler(encoder)
    best, losses, finish = choose_round(trainer, validation, [lambda a=a: scale(a) for a in factors], train_round, generators)
    scale(factors[best])
    return factors[best], losses, finish

