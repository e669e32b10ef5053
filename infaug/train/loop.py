"""The alternating loop (SPEC 3), one function for every method: :func:`run_method`.

    train F (warm-up epochs, with the method's augmentation)
    for each round:
        s_val at F's current weights (the Hessian over the training samples and their augmentations)
        proposed only: train E by influence, F and G fixed (on F's last layer, or with
            encoder.influence = "network" on all its parameters, or with "unrolled" against
            the validation loss measured after a few of F's steps; then, with encoder.shrink, scale
            its mean by the factor that F's exactly retrained last layer prefers, or with
            encoder.shrink_judge = "round" the one after whose round of F's training (tried for
            each factor) F's validation loss is lowest; with encoder.judge_horizon = "end", lowest
            after F's training on to the end of its schedule)
        train F further on originals plus augmentations (with loop.round_candidates = K > 1, a
            control for the round judge's selection: K times, with K draws of the augmentations,
            and on from the one with the lowest validation loss)
    evaluate F on the validation and the test split, once

With encoder.train_at = "end", proposed instead runs this loop twice: on its untrained E (G's
prior), then, after E is trained once at that fully trained F, on E held fixed (reported).

Every method runs this same code with the same seed, splits, F initialisation, epochs, batches and
rounds; methods differ only in the augmentation callable. At every round the I_aug of the
method's augmentations is measured on the held-out labelled samples (those E never trains on).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn

from infaug import distributed
from infaug.augmenter import Augmenter
from infaug.config import Config
from infaug.train.checkpoint import Checkpoints, Phase, rng_states, set_rng_states
from infaug.train.classifier import Augment, ClassifierTrainer, evaluate, influence_engine
from infaug.train.encoder import choose_shrink, i_aug, train_encoder
from infaug.train.network_influence import NetworkInfluence
from infaug.train.round_judge import choose_draw_by_round, choose_shrink_by_round
from infaug.train.seeds import derive
from infaug.train.seeds import rng as seeded
from infaug.train.task import Task
from infaug.train.unrolled import UnrolledObjective

__all__ = ["MethodResult", "make_augmentation", "round_epochs", "run_method"]

log = logging.getLogger("infaug")


@dataclass
class MethodResult:
    method: str
    seed: int
    test_loss: float
    test_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float
    model: nn.Module
    augment: Optional[Augment]
    encoder: Optional[nn.Module] = None
    generator: Optional[nn.Module] = None
    rounds: list = field(default_factory=list)  # per round: val loss, I_aug on the held-out samples
    encoder_history: list = field(default_factory=list)  # per round: mean I_aug per E step
    holdout_i_aug: dict = field(default_factory=dict)  # proposed: I_aug (per sample) at the last round's F
    last_layer_check: dict = field(default_factory=dict)  # proposed: predicted and actual, see infaug.diagnose
    first_pass: dict = field(default_factory=dict)  # proposed with encoder.train_at = "end": pass 1's F and E's training


def round_epochs(epochs: int, rounds: int, warmup: float) -> list[int]:
    """[warm-up epochs, epochs of round 1, ..., of round R]: the warm-up share first, the rest
    split as evenly as possible."""
    warm = int(round(epochs * warmup))
    rest = epochs - warm
    return [warm] + [rest // rounds + (1 if r < rest % rounds else 0) for r in range(rounds)]


def make_augmentation(method: str, task: Task, config: Config, generator: Optional[nn.Module], encoder: Optional[nn.Module]):
    """The augmentation callable (x, rng) -> x~ of ``method`` (None for ``none``)."""
    if method == "none":
        return None
    if method == "heuristic":
        return task.heuristic
    if method in ("random_g", "proposed"):
        if generator is None:
            raise ValueError(f"method {method!r} needs a pre-trained G")
        if task.kind == "points":
            source = (lambda x, rng: generator.sample_latent(len(x), generator=rng, device=x.device)) if encoder is None else encoder
            return lambda x, rng: generator(x, source(x, rng))
        temperature = config.generator.temperature if method == "random_g" else 1.0
        augmenter = Augmenter(generator, encoder, temperature=temperature)
        return lambda x, rng: augmenter(x, generator=rng)
    if method in ("trivialaugment", "randaugment"):
        if task.kind != "images":
            raise ValueError(f"method {method!r} augments images; it does not apply to the toy2d points")
        from infaug.baselines import KorniaPolicy

        k = config.kornia
        options = {"n": k.randaugment_n, "m": k.randaugment_m} if method == "randaugment" else {"scale": k.trivialaugment_scale}
        policy = KorniaPolicy(method, channels=task.shape[0], **options)
        return lambda x, rng: policy(x, rng)
    raise ValueError(f"method must be one of none, heuristic, random_g, proposed, trivialaugment, randaugment; got {method!r}")


def run_method(
    method: str, task: Task, config: Config, seed: int, *, generator: Optional[nn.Module] = None, checkpoint: Optional[Phase] = None
) -> MethodResult:
    """Trains F with ``method``'s augmentation by the alternating loop and evaluates it.

    ``generator`` is the pre-trained G (random_g and proposed); it is not modified. With
    ``checkpoint``, a run continues from what was saved there (a finished method is only
    rebuilt), saves after every phase and, when due, after every epoch: the result is the same
    as that of an uninterrupted run, bit for bit on the CPU. With ``encoder.train_at = "end"``,
    proposed runs :func:`_run_trained_at_end` instead of training E in the rounds.
    """
    checkpoint = checkpoint if checkpoint is not None else Checkpoints(None).phase(method)  # off: only the clock
    if method == "proposed" and config.encoder.train_at == "end":
        return _run_trained_at_end(task, config, seed, generator=generator, checkpoint=checkpoint)
    return _run_loop(method, task, config, seed, generator=generator, checkpoint=checkpoint)


def _run_trained_at_end(task: Task, config: Config, seed: int, *, generator: Optional[nn.Module], checkpoint: Phase) -> MethodResult:
    """proposed with ``encoder.train_at = "end"``: F's whole schedule on the untrained E (pass 1);
    E trained at that F for loop.rounds x encoder.steps steps; F's whole schedule again, from the
    same initialisation, batches and draws, on E's augmentations held fixed (pass 2, reported).
    Pass 1 and E checkpoint in their own files beside ``checkpoint``; the seconds are all three's."""
    e = config.encoder
    first = _run_loop("proposed", task, config, seed, generator=generator, encoder_mode="prior",
                      checkpoint=checkpoint.checkpoints.phase(f"{checkpoint.key}-pass1"))
    phase = checkpoint.checkpoints.phase(f"{checkpoint.key}-E")
    saved = phase.load()
    if saved is None:
        with torch.no_grad():
            augmented = first.augment(task.train[0], seeded(seed, "measurements after pass 1"))
        engine = influence_engine(first.model, task.train, task.validation, damping=config.classifier.damping, train_augmented=augmented)
        rng = seeded(seed, "E after pass 1")
        history = _train_e(first.encoder, generator, first.model, engine, task, e, steps=e.steps * config.loop.rounds, rng=rng,
                           noise_rng=distributed.rank_rng(seed, "E after pass 1", rng), label=f"seed {seed} proposed E after pass 1")
        saved = {"encoder": first.encoder.state_dict(), "history": history}
        phase.save(lambda: saved, note="E trained after pass 1")
        saved = dict(saved, seconds=phase.elapsed())
    moved = f", mean I_aug {saved['history'][0]:.4g} -> {saved['history'][-1]:.4g}" if saved["history"] else ""
    log.info(f"seed {seed} proposed: pass 1 (G's prior) validation loss {first.val_loss:.4f}; E trained at its end{moved}")
    # the run's own file, with a clock from now: ``checkpoint``'s has run since pass 1 began
    second = _run_loop("proposed", task, config, seed, generator=generator, checkpoint=checkpoint.checkpoints.phase(checkpoint.key),
                       encoder_mode="fixed", encoder_state=saved["encoder"])
    second.seconds += first.seconds + saved["seconds"]
    second.encoder_history = [saved["history"]]
    second.first_pass = {"val_loss": first.val_loss, "val_accuracy": first.val_accuracy, "seconds": first.seconds,
                         "encoder_seconds": saved["seconds"]}
    return second


def _run_loop(
    method: str, task: Task, config: Config, seed: int, *, generator: Optional[nn.Module], checkpoint: Phase,
    encoder_mode: str = "train", encoder_state: Optional[dict] = None,
) -> MethodResult:
    """The loop of :func:`run_method`. For proposed, ``encoder_mode`` "train" trains E in the
    rounds (SPEC 3); "prior" never trains it (G's prior at encoder.noise); "fixed" holds E at
    ``encoder_state`` and measures it in the rounds."""
    c, e = config.classifier, config.encoder
    torch.manual_seed(derive(seed, "F"))  # the same F initialisation for every method of a seed
    model = task.make_classifier()
    batches = seeded(seed, "batches")  # the same batch order for every method of a seed
    rng = seeded(seed, "augmentations")  # E's batches; in one process also the augmentations and E's noise
    local = distributed.rank_rng(seed, "augmentations", rng)  # this rank's augmentations and E's noise (rng itself in one process)
    measure = seeded(seed, "measurements")  # what is only measured draws apart, so it changes no training
    encoder = None
    if method == "proposed":
        torch.manual_seed(derive(seed, "E"))
        encoder = task.make_encoder()  # untrained: N(0, encoder.noise^2), random_g's prior when noise = generator.temperature
        if encoder_state is not None:
            encoder.load_state_dict(encoder_state)
            encoder.eval()
    augment = make_augmentation(method, task, config, generator, encoder)
    train_x, train_y = task.train
    steps_per_epoch = -(-len(train_y) // c.batch_size)
    trainer = ClassifierTrainer(
        model, total_epochs=c.epochs, steps_per_epoch=steps_per_epoch, lr=c.lr, weight_decay=c.weight_decay, damping=c.damping
    )
    schedule = round_epochs(c.epochs, config.loop.rounds, config.loop.warmup)
    rounds, encoder_history, holdout, check = [], [], {}, {}
    check_seconds = 0.0  # the diagnostic's time, not part of the method's

    def state(**finished) -> dict:
        return {
            "trainer": trainer.state_dict(), "encoder": None if encoder is None else encoder.state_dict(),
            "encoder_training": encoder is not None and encoder.training,
            "rounds": rounds, "encoder_history": encoder_history, "holdout": holdout, "check": check,
            "check_seconds": check_seconds,
            "rng": rng_states(batches=batches, rng=rng, measure=measure), "rank_rng": distributed.rank_states(local), **finished,
        }

    saved = checkpoint.load()
    if saved is not None:
        trainer.load_state_dict(saved["trainer"])
        if encoder is not None:
            encoder.load_state_dict(saved["encoder"])
            encoder.train(saved["encoder_training"])
        rounds, encoder_history, holdout, check = saved["rounds"], saved["encoder_history"], saved["holdout"], saved["check"]
        check_seconds = saved["check_seconds"]
        set_rng_states(saved["rng"], batches=batches, rng=rng, measure=measure)
        distributed.restore_rank_rng(saved.get("rank_rng"), local, seed, f"{method} augmentations",
                                     f"F epoch {trainer.epochs_done}, {len(rounds)} rounds")
        if "result" not in saved:
            log.info(f"seed {seed} {method}: continuing from its checkpoint ({saved.get('note', '')}) on "
                     f"{distributed.world_size()} process{'es' if distributed.world_size() > 1 else ''}")
        if "result" in saved:
            return MethodResult(method, seed, **saved["result"], seconds=saved["seconds"] - check_seconds, model=model, augment=augment, encoder=encoder,
                                generator=generator if method in ("random_g", "proposed") else None, rounds=rounds,
                                encoder_history=encoder_history, holdout_i_aug=holdout, last_layer_check=check)
    save = checkpoint.save

    def train_f(number: int, label: str, on_epoch=None) -> bool:
        """F on originals plus augmentations up to the end of part ``number`` of the schedule;
        whether there was anything left to train."""
        remaining = sum(schedule[: number + 1]) - trainer.epochs_done
        if remaining > 0:
            trainer.train(train_x, train_y, remaining, augment=augment, batch_size=c.batch_size, generator=batches,
                          augment_rng=local, label=label, on_epoch=on_epoch)
        return remaining > 0

    holdout_x, holdout_y = train_x[task.holdout_rows], train_y[task.holdout_rows]
    for number in range(len(schedule)):  # 0: F's warm-up; then the rounds
        if number >= 1 and len(rounds) < number:
            # s_val at F's current weights, over the training samples and one draw of their augmentations.
            with torch.no_grad():
                augmented = augment(train_x, measure) if augment is not None else None
            engine = influence_engine(model, task.train, task.validation, damping=c.damping, train_augmented=augmented)
            record = {"round": number, "val_loss": evaluate(model, *task.validation)[0]}
            if augment is not None:
                record["holdout_i_aug"] = _mean_i_aug(model, engine, holdout_x, holdout_y, augment, measure)
            finish_round = None  # set when E's step is judged by rounds of F's training
            if encoder is not None and encoder_mode == "train":
                # E: minimise the mean I_aug of its augmentations over the samples it trains on (F, G fixed).
                encoder_start = time.perf_counter()
                objective = engine
                if e.influence == "network":  # s_val over all of F's parameters, on the same samples
                    objective = NetworkInfluence(model, damping=e.network_damping, iterations=e.network_iterations).fit(*task.train)
                    objective.fit(augmented, train_y).set_validation(*task.validation)
                    record["network_solve"] = {k: objective.solve_info[k] for k in ("iterations", "residual", "seconds")}
                elif e.influence == "unrolled":  # measured after a few of F's gradient steps, not predicted
                    objective = UnrolledObjective(model, task.validation, steps=e.unroll_steps, lr=e.unroll_lr)
                encoder_history.append(_train_e(encoder, generator, model, objective, task, e, steps=e.steps, rng=rng, noise_rng=local,
                                                label=f"seed {seed} {method} E round {number}"))
                if e.shrink_judge == "round" and len(e.shrink) > 1:  # each factor judged by F's round on it
                    record["shrink"], record["shrink_val_loss"], finish_round = choose_shrink_by_round(
                        encoder, trainer, task.validation, e.shrink,
                        train_round=lambda: train_f(number, f"seed {seed} {method} F round {number} candidate"),
                        generators={"batches": batches, "rng": rng, "local": local},
                        train_rest=(lambda: train_f(len(schedule) - 1, f"seed {seed} {method} F round {number} candidate to the end"))
                        if e.judge_horizon == "end" else None)
                elif len(e.shrink) > 1 or e.shrink[0] != 1.0:
                    record["shrink"], losses = choose_shrink(encoder, augment, model, task.train, task.validation, e.shrink,
                                                             damping=c.damping, rng=seeded(seed, f"shrink round {number}"))
                    if losses:
                        record["shrink_val_loss"] = losses
                record["encoder_seconds"] = time.perf_counter() - encoder_start
                record["holdout_i_aug_trained"] = _mean_i_aug(model, engine, holdout_x, holdout_y, augment, measure)
            if encoder is not None and encoder_mode != "prior" and number == len(schedule) - 1:
                holdout = _compare_on_holdout(model, engine, task, config, generator, encoder, measure)
                if task.kind == "images" and config.loop.last_layer_check:
                    check_start = time.perf_counter()
                    check = _last_layer_check(model, task, config, generator, encoder, seed)
                    check_seconds += time.perf_counter() - check_start  # a diagnostic, not part of the method's time
            if finish_round is not None:  # F as the chosen candidate's round left it: that round is trained
                finish_round()
            if augment is not None and config.loop.round_candidates > 1 and finish_round is None:
                # The control for the round judge's selection: the round trained with K draws of the
                # augmentations (the first the run's own), F goes on from the lowest validation loss.
                seeds = [None] + [_candidate_seed(seed, number, k) for k in range(1, config.loop.round_candidates)]
                record["candidate"], record["candidate_val_loss"], finish_draw = choose_draw_by_round(
                    trainer, task.validation, local, seeds,
                    train_round=lambda: train_f(number, f"seed {seed} {method} F round {number} candidate"),
                    generators={"batches": batches, "rng": rng, "local": local})
                finish_draw()
            rounds.append(record)
            save(state, note=f"round {number} measured" + (" and E trained" if encoder is not None and encoder_mode == "train" else ""))
        # F: train on originals plus the augmentations, up to the end of this part of the schedule.
        label = f"seed {seed} {method} F " + (f"round {number}" if number else "warm-up")
        if train_f(number, label, on_epoch=lambda: save(state, force=False, note=f"F epoch {trainer.epochs_done} of {c.epochs}")):
            save(state, note=f"F epoch {trainer.epochs_done} of {c.epochs}")
    val_loss, val_accuracy = evaluate(model, *task.validation)
    test_loss, test_accuracy = evaluate(model, *task.test)
    result = {"test_loss": test_loss, "test_accuracy": test_accuracy, "val_loss": val_loss, "val_accuracy": val_accuracy}
    save(lambda: state(result=result), note="finished")
    return MethodResult(
        method, seed, test_loss, test_accuracy, val_loss, val_accuracy, checkpoint.elapsed() - check_seconds, model, augment,
        encoder, generator if method in ("random_g", "proposed") else None, rounds, encoder_history, holdout, check,
    )


def _train_e(encoder, generator, model, objective, task: Task, e, *, steps: int, rng, noise_rng, label: str) -> list[float]:
    """E trained ``steps`` steps against ``objective`` on the training rows it may see (``task.encoder_rows``),
    with encoder config ``e``'s batch size, learning rate and penalties."""
    rows = task.encoder_rows
    return train_encoder(encoder, generator, model, objective, task.train[0][rows], task.train[1][rows], steps=steps,
                         batch_size=e.batch_size, lr=e.lr, penalty=e.tau_penalty, rng=rng, kl=e.kl, clip=e.clip, label=label,
                         noise_rng=noise_rng)


def _candidate_seed(seed: int, number: int, k: int) -> int:
    """The seed of candidate k's augmentations in round ``number`` (loop.round_candidates), this rank's."""
    part = f"augmentations round {number} candidate {k}"
    if distributed.is_distributed():
        part += f"/rank {distributed.rank()} of {distributed.world_size()}"
    return derive(seed, part)


DRAWS = 8  # augmentations per held-out sample when I_aug is measured: its mean over one draw is noisy


@torch.no_grad()
def _i_aug_draws(model, engine, x: Tensor, y: Tensor, augment: Augment, rng: torch.Generator) -> Tensor:
    """I_aug (N,) of each sample averaged over DRAWS augmentations of it."""
    return torch.stack([i_aug(model, engine, x, augment(x, rng), y) for _ in range(DRAWS)]).mean(0)


def _mean_i_aug(model, engine, x: Tensor, y: Tensor, augment: Augment, rng: torch.Generator) -> float:
    return float(_i_aug_draws(model, engine, x, y, augment, rng).mean())


@torch.no_grad()
def _compare_on_holdout(model, engine, task: Task, config: Config, generator, encoder, rng: torch.Generator) -> dict:
    """I_aug (per held-out sample, averaged over DRAWS augmentations) of E's, G's prior's and the
    heuristic's augmentations, all at the same F and s_val: the prediction that ``proposed`` is
    judged on, on samples E never saw."""
    x, y = task.train[0][task.holdout_rows], task.train[1][task.holdout_rows]
    out = {}
    for name, source in (("proposed", encoder), ("random_g", None), ("heuristic", "heuristic")):
        kind = "random_g" if source is None else "proposed"
        augment = task.heuristic if source == "heuristic" else make_augmentation(kind, task, config, generator, source)
        out[name] = _i_aug_draws(model, engine, x, y, augment, rng).cpu()
    return out


@torch.no_grad()
def _last_layer_check(model, task: Task, config: Config, generator, encoder, seed: int) -> dict:
    """Predicted against actual effect of E's, G's prior's and the heuristic's augmentations on
    F's retrained last layer (``infaug.diagnose``)."""
    from infaug.diagnose import last_layer_check

    rng = seeded(seed, "last layer check")
    x = task.train[0]
    augmented = {
        "proposed": make_augmentation("proposed", task, config, generator, encoder)(x, rng),
        "random_g": make_augmentation("random_g", task, config, generator, None)(x, rng),
        "heuristic": task.heuristic(x, rng),
    }
    return last_layer_check(model, task.train, task.validation, augmented, damping=config.classifier.damping, seed=seed)
