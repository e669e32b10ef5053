"""The alternating loop, one function for every method: :func:`run_method`.

    F's warm-up (the first loop.warmup share of its epochs, with the method's augmentation; with
        semi.ratio > 0, every epoch of F also trains on unlabelled images, infaug.train.semi)
    for each round:
        measure: s_val at F's current weights over E's target (the validation split, or with
            encoder.target = "pseudo" also the held-out unlabelled images F labels confidently),
            the validation loss, the held-out I_aug
        proposed: train E by influence (F and G fixed); with several encoder.shrink factors,
            E's step judged by F's round, trained once per factor (infaug.train.round_judge)
        F's round on originals plus augmentations (as the chosen candidate trained it, if judged)
        checkpoint
    evaluate F on the validation and the test split, once

Every method runs this same code with the same seed, splits, F initialisation, epochs, batches and
rounds; methods differ only in the augmentation callable.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import torch
from torch import nn

from infaug import distributed
from infaug.config import Config
from infaug.train.checkpoint import Checkpoints, Phase
from infaug.train.classifier import Augment, ClassifierTrainer, evaluate, influence_engine
from infaug.train.encoder import LastLayerObjective, mean_scaler, train_encoder
from infaug.train.measure import diagnose, mean_i_aug, summary
from infaug.train.methods import make_augmentation
from infaug.train.round_judge import choose_shrink_by_round
from infaug.train.semi import Unlabelled
from infaug.train.target import e_target
from infaug.util.seeds import derive
from infaug.util.seeds import rng as seeded
from infaug.train.state import LoopState, MethodResult
from infaug.train.task import Task

__all__ = ["round_epochs", "run_method"]

log = logging.getLogger("infaug")


def round_epochs(epochs: int, rounds: int, warmup: float) -> list[int]:
    """[warm-up epochs, epochs of round 1, ..., of round R]: the warm-up share first, the rest
    split as evenly as possible."""
    warm = int(round(epochs * warmup))
    rest = epochs - warm
    return [warm] + [rest // rounds + (1 if r < rest % rounds else 0) for r in range(rounds)]


def run_method(method: str, task: Task, config: Config, seed: int, *, generator: Optional[nn.Module] = None,
               checkpoint: Optional[Phase] = None, model: Optional[nn.Module] = None,
               optimizer: Optional[torch.optim.Optimizer] = None) -> MethodResult:
    """Trains F with ``method``'s augmentation by the alternating loop and evaluates it.

    ``generator`` is the pre-trained G (random_g and proposed); it is not modified. ``model`` (F,
    with ``features`` and ``head``; default: the task's, initialised from the seed) and
    ``optimizer`` (default: AdamW with the classifier config's settings) are trained in place.
    With ``checkpoint``, a run continues from what was saved there (a finished method is only
    rebuilt), saves after every round and, when due, after every epoch: the result is the same as
    that of an uninterrupted run, bit for bit on the CPU.
    """
    checkpoint = checkpoint if checkpoint is not None else Checkpoints(None).phase(method)  # off: only the clock
    c, e = config.classifier, config.encoder
    state = _start(method, task, config, seed, model, optimizer)
    augment = make_augmentation(method, task, config, generator, state.encoder)
    saved = checkpoint.load()
    if saved is not None:
        state.load_state_dict(saved, seed=seed, method=method)
        if state.result is not None:
            return _result(method, seed, task, state, augment, generator, saved["seconds"])
        log.info(f"seed {seed} {method}: continuing from its checkpoint ({saved.get('note', '')}) on {distributed.world_size()} "
                 f"process{'es' if distributed.world_size() > 1 else ''}")
    schedule = round_epochs(c.epochs, config.loop.rounds, config.loop.warmup)
    judged = state.encoder is not None and len(e.shrink) > 1  # E's step judged by F's round, once per factor
    train_f = lambda number, label, on_epoch=None: _train_f(state, task, config, augment, sum(schedule[: number + 1]), label, on_epoch)  # noqa: E731

    def train_part(number: int) -> None:
        """F through part ``number`` of the schedule (0: the warm-up), checkpointing as it goes."""
        note = lambda: f"F epoch {state.trainer.epochs_done} of {c.epochs}"  # noqa: E731
        if train_f(number, f"seed {seed} {method} F " + (f"round {number}" if number else "warm-up"),
                   on_epoch=lambda: checkpoint.save(state.state_dict, force=False, note=note())):
            checkpoint.save(state.state_dict, note=note())

    train_part(0)  # F's warm-up, on the method's augmentation
    for number in range(1, len(schedule)):
        if len(state.rounds) < number:  # (a resumed run may be past this round's measurement)
            engine, record = _measure(state, task, config, augment, number)
            finish_round = None
            if state.encoder is not None:  # E by influence (F, G fixed); with several factors, judged by F's round
                finish_round = _train_e(state, record, generator, augment, engine, task, config, f"seed {seed} {method} E round {number}",
                                        train_round=lambda: train_f(number, f"seed {seed} {method} F round {number} candidate"))
                if number == len(schedule) - 1:
                    diagnose(state, engine, task, config, generator, seed)
            if finish_round is not None:
                finish_round()  # F's round, judged: F goes on from where the chosen candidate's round left it
            state.rounds.append(record)
            checkpoint.save(state.state_dict, note=f"round {number} measured" + (" and E trained" if state.encoder is not None else ""))
        if not judged:
            train_part(number)  # F's round on originals plus the augmentations
    state.result = _evaluate(state.trainer.model, task)
    checkpoint.save(state.state_dict, note="finished")
    return _result(method, seed, task, state, augment, generator, checkpoint.elapsed())


def _train_f(state: LoopState, task: Task, config: Config, augment: Optional[Augment], until: int, label: str, on_epoch=None) -> bool:
    """F on originals plus augmentations until it has trained ``until`` epochs; whether it had any left."""
    remaining = until - state.trainer.epochs_done
    if remaining > 0:
        state.trainer.train(*task.train, remaining, augment=augment, batch_size=config.classifier.batch_size,
                            generator=state.batches, augment_rng=state.local, label=label, on_epoch=on_epoch,
                            unlabelled=state.unlabelled)
    return remaining > 0


def _start(method: str, task: Task, config: Config, seed: int, model: Optional[nn.Module], optimizer) -> LoopState:
    """F, E (proposed only), F's trainer and the random streams, initialised from the seed alone."""
    c = config.classifier
    torch.manual_seed(derive(seed, "F"))  # the same F initialisation for every method of a seed
    model = task.make_classifier() if model is None else model
    batches, rng, measure = seeded(seed, "batches"), seeded(seed, "augmentations"), seeded(seed, "measurements")
    local = distributed.rank_rng(seed, "augmentations", rng)
    encoder = None
    if method == "proposed":
        torch.manual_seed(derive(seed, "E"))
        encoder = task.make_encoder()  # untrained: N(0, encoder.noise^2), random_g's prior when noise = generator.temperature
    trainer = ClassifierTrainer(model, total_epochs=c.epochs, steps_per_epoch=-(-len(task.train[1]) // c.batch_size), lr=c.lr,
                                weight_decay=c.weight_decay, damping=c.damping, optimizer=optimizer)
    u = config.semi
    unlabelled = None if u.ratio == 0 else Unlabelled(task.semi_images, u.ratio, u.threshold, u.weight, u.translation,
                                                      seeded(seed, "unlabelled"))
    return LoopState(trainer, encoder, batches, rng, local, measure, unlabelled=unlabelled)


def _measure(state: LoopState, task: Task, config: Config, augment: Optional[Augment], number: int):
    """(s_val at F's current weights, the round's record): the Hessian over the training samples and
    one draw of their augmentations, g_val over E's target; F's validation loss; the held-out I_aug
    of the augmentations."""
    model = state.trainer.model
    with torch.no_grad():
        augmented = augment(task.train[0], state.measure) if augment is not None else None
    *target, pseudo = e_target(model, task.validation, task.target_images, config.encoder.target_threshold)
    engine = influence_engine(model, task.train, tuple(target), damping=config.classifier.damping, train_augmented=augmented)
    record = {"round": number, "val_loss": evaluate(model, *task.validation)[0]}
    if config.encoder.target == "pseudo":
        record["target_pseudo_labelled"] = pseudo
    if augment is not None:
        record["holdout_i_aug"] = mean_i_aug(model, engine, task, augment, state.measure)
    return engine, record


def _train_e(state: LoopState, record: dict, generator, augment: Augment, engine, task: Task, config: Config, label: str, *, train_round):
    """E trained encoder.steps steps to minimise the mean I_aug (F's last layer) of its augmentations
    over the rows it may see (``task.encoder_rows``). With several encoder.shrink factors, E's step
    is judged by ``train_round`` (F's round) once per factor: F is left at the round's start and the
    returned ``finish`` moves it to the end of the chosen candidate's round; else None."""
    e, rows, finish = config.encoder, task.encoder_rows, None
    started = time.perf_counter()
    images, labels = task.train[0][rows], task.train[1][rows]
    objective = LastLayerObjective(state.trainer.model, engine, images, labels)
    state.encoder_history.append(train_encoder(
        state.encoder, generator, objective, images, labels, steps=e.steps, batch_size=e.batch_size, lr=e.lr,
        penalty=e.tau_penalty, rng=state.rng, kl=e.kl, clip=e.clip, label=label, noise_rng=state.local))
    if len(e.shrink) > 1:
        record["shrink"], record["shrink_val_loss"], finish = choose_shrink_by_round(
            state.encoder, state.trainer, task.validation, e.shrink, train_round, state.generators)
    elif e.shrink[0] != 1.0:  # one factor: E's mean scaled by it, nothing judged
        record["shrink"] = e.shrink[0]
        mean_scaler(state.encoder)(e.shrink[0])
    record["encoder_seconds"] = time.perf_counter() - started
    record["holdout_i_aug_trained"] = mean_i_aug(state.trainer.model, engine, task, augment, state.measure)
    return finish


def _evaluate(model: nn.Module, task: Task) -> dict:
    val_loss, val_accuracy = evaluate(model, *task.validation)
    test_loss, test_accuracy = evaluate(model, *task.test) if task.test is not None else (None, None)
    return {"test_loss": test_loss, "test_accuracy": test_accuracy, "val_loss": val_loss, "val_accuracy": val_accuracy}


def _result(method: str, seed: int, task: Task, state: LoopState, augment, generator, seconds: float) -> MethodResult:
    return MethodResult(method, seed, **state.result, seconds=seconds - state.check_seconds, model=state.trainer.model,
                        augment=augment, encoder=state.encoder, generator=generator if method in ("random_g", "proposed") else None,
                        rounds=state.rounds, encoder_history=state.encoder_history, holdout_i_aug=state.holdout,
                        last_layer_check=state.check, summary=summary(task, generator, state.encoder))


