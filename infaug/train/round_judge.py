"""A round of F's training chosen among candidates by the validation loss: :func:`choose_round`.

Its use in the method is E's step judged over a whole round of F's training (``encoder.shrink =
[...]`` with ``encoder.shrink_judge = "round"``): :func:`choose_shrink_by_round`. Its use as a
control is :func:`choose_draw_by_round` (``loop.round_candidates``): the same selection for any
method, the candidates differing only in the augmentations' random draws, which measures how much
of what the judge gains is the choice of the best of several rounds by the validation split
rather than E's step.

The influence function predicts the effect of an augmentation at F's current weights; E, trained
to minimise that prediction, can move to where it no longer holds, and the exact retrained last
layer (:func:`infaug.train.encoder.choose_shrink`) still sees only F's head. Here each candidate
step is measured by what the loop does with it: for each factor a, E's mean is scaled by a
(a = 0: G's prior), F trains the round's epochs on originals plus those augmentations, and its
validation loss is measured. Every candidate starts from the same F (weights, optimiser, schedule)
and the same random states, so they differ only in a; the lowest validation loss wins, and F goes
on from where that candidate's round left it (its round is not trained again).

The cost is ``len(factors) - 1`` more rounds of F's training per round, which the method's time
includes.

With ``train_rest`` (``encoder.judge_horizon = "end"``) each candidate's F goes on after its round to
the end of the whole schedule, E held at that factor (no further E training), and the validation
loss there judges it: the horizon is the rest of F's training, not one round, at the cost of
training F to the end once per factor and round. F still goes on from where the chosen
candidate's *round* left it, so E's later rounds are trained as before.

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
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from infaug import distributed
from infaug.train.checkpoint import rng_states, set_rng_states
from infaug.train.classifier import ClassifierTrainer, evaluate
from infaug.train.encoder import mean_scaler

__all__ = ["choose_draw_by_round", "choose_round", "choose_shrink_by_round"]


def choose_round(
    trainer: ClassifierTrainer,
    validation: tuple,
    setups: Sequence[Callable[[], None]],
    train_round: Callable[[], object],
    generators: dict[str, torch.Generator],
    train_rest: Optional[Callable[[], object]] = None,
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
    ``train_rest()``, if given, trains F on from the end of the round to the end of its schedule
    before each candidate is measured (the losses are then those at the end).
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
        if train_rest is not None:
            train_rest()
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
    train_rest: Optional[Callable[[], object]] = None,
) -> tuple[float, list[float], Callable[[], None]]:
    """Returns (the chosen factor, the validation loss after each candidate's round, ``finish``):
    :func:`choose_round` with candidate a = E's mean scaled by a. On return E's mean is scaled by
    the chosen factor, and F and the generators are as :func:`choose_round` leaves them.
    """
    factors = [float(a) for a in factors]
    if not factors:
        raise ValueError("factors: expected at least one factor, got none")
    scale = mean_scaler(encoder)
    best, losses, finish = choose_round(trainer, validation, [lambda a=a: scale(a) for a in factors], train_round,
                                        generators, train_rest)
    scale(factors[best])
    return factors[best], losses, finish


def choose_draw_by_round(
    trainer: ClassifierTrainer,
    validation: tuple,
    draws: torch.Generator,
    seeds: Sequence[Optional[int]],
    train_round: Callable[[], object],
    generators: dict[str, torch.Generator],
) -> tuple[int, list[float], Callable[[], None]]:
    """Returns (the index of the chosen candidate, the validation loss after each candidate's
    round, ``finish``): :func:`choose_round` with candidate k drawing the round's augmentations
    from ``draws`` seeded with ``seeds[k]`` (None: from ``draws`` as it is, the run's own stream).
    ``draws`` must be one of ``generators``.
    """
    if not any(g is draws for g in generators.values()):
        raise ValueError("draws: expected one of the generators, so that every candidate starts from the same state")
    if not seeds:
        raise ValueError("seeds: expected at least one candidate (None for the run's own draws), got none")
    return choose_round(trainer, validation, [lambda s=s: None if s is None else draws.manual_seed(s) for s in seeds],
                        train_round, generators)
