"""Semi-supervised F (FixMatch) and E's large target: the consistency loss on known cases, the weak
view, the trainer's step against one written out by hand, every method through the same code, the
target held out from F, and resume."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from infaug.config import METHODS, Config, load_preset
from infaug.data import Digits
from infaug.models import AllConvNet
from infaug.train import semi
from infaug.train.checkpoint import Checkpoints
from infaug.train.classifier import ClassifierTrainer, influence_engine
from infaug.train.loop import run_method
from infaug.train.pretrain import pretrain
from infaug.train.semi import Unlabelled, consistency_loss, random_shifts, split_unlabelled, weak_view
from infaug.train.target import e_target, pseudo_labelled
from infaug.train.task import build_task

# ---- the consistency loss ----------------------------------------------------------------------


def test_consistency_loss_of_a_known_case():
    strong = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0]])
    weak = torch.tensor([[0.96, 0.02, 0.02], [0.5, 0.3, 0.2], [0.01, 0.01, 0.98]])
    loss, mask = consistency_loss(strong, weak, threshold=0.95)
    assert mask.tolist() == [True, False, True]
    ce = F.cross_entropy(strong, torch.tensor([0, 0, 2]), reduction="none")
    torch.testing.assert_close(loss, (ce[0] + ce[2]) / 3)  # averaged over every row, the masked one as 0
    per_row, _ = consistency_loss(strong, weak, 0.95, reduction="none")
    torch.testing.assert_close(per_row, torch.stack([ce[0], torch.tensor(0.0), ce[2]]))
    torch.testing.assert_close(consistency_loss(strong, weak, 0.95, reduction="sum")[0], ce[0] + ce[2])


def test_the_threshold_is_inclusive_and_bounds_the_mask():
    weak = torch.tensor([[0.75, 0.25], [0.25, 0.75], [0.5, 0.5]], dtype=torch.float64)
    strong = torch.zeros(3, 2, dtype=torch.float64)
    assert consistency_loss(strong, weak, 0.75)[1].tolist() == [True, True, False]  # max p == threshold counts
    assert consistency_loss(strong, weak, 0.7500001)[1].tolist() == [False, False, False]
    assert consistency_loss(strong, weak, 0.0)[1].tolist() == [True, True, True]  # 0: plain pseudo-labelling
    assert float(consistency_loss(strong, weak, 1.0)[0]) == 0.0  # nothing is that confident: no loss


def test_the_gradient_reaches_only_the_strong_view():
    strong = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    weak_logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(1)) * 4
    weak_logits.requires_grad_(True)
    loss, mask = consistency_loss(strong, weak_logits.softmax(1), 0.5)
    assert mask.any()
    loss.backward()
    assert weak_logits.grad is None  # detached: no gradient through the pseudo-label
    pseudo = weak_logits.detach().argmax(1)
    expected = (strong.detach().softmax(1) - F.one_hot(pseudo, 4)) * mask.unsqueeze(1) / 5
    torch.testing.assert_close(strong.grad, expected)


def test_consistency_loss_checks_its_shapes():
    with pytest.raises(ValueError, match=r"both have shape \(U, K\), got \(2, 3\) and \(2, 4\)"):
        consistency_loss(torch.zeros(2, 3), torch.zeros(2, 4), 0.9)
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'max'"):
        consistency_loss(torch.zeros(2, 3), torch.zeros(2, 3), 0.9, reduction="max")


# ---- the weak view -----------------------------------------------------------------------------


def test_weak_view_moves_whole_pixels_and_fills_with_zeros():
    x = torch.rand(3, 2, 10, 12, generator=torch.Generator().manual_seed(0))
    shifts = torch.tensor([[2, 0], [0, -3], [-1, 1]])
    out = weak_view(x, shifts)
    expected = torch.zeros_like(x)
    expected[0, :, :, 2:] = x[0, :, :, :-2]  # right by 2
    expected[1, :, :-3, :] = x[1, :, 3:, :]  # up by 3
    expected[2, :, 1:, :-1] = x[2, :, :-1, 1:]  # left by 1, down by 1
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert weak_view(x, torch.zeros(3, 2, dtype=torch.long)) is x


def test_random_shifts_cover_their_range_and_no_more():
    shifts = random_shifts(4000, 28, 28, 0.125, torch.Generator().manual_seed(0))
    assert shifts.shape == (4000, 2) and int(shifts.min()) == -3 and int(shifts.max()) == 3  # int(0.125 * 28) = 3
    assert set(shifts[:, 0].tolist()) == set(range(-3, 4))
    assert not random_shifts(10, 28, 28, 0.0, None).any()


# ---- the trainer's step ------------------------------------------------------------------------


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(16, 1, 12, 12, generator=g), torch.arange(16) % 3
    u = torch.rand(40, 1, 12, 12, generator=g)
    torch.manual_seed(seed)
    return AllConvNet(1, 3, width=4), x, y, u


def test_a_semi_supervised_step_is_the_loss_written_out():
    """One step of the trainer with unlabelled images equals one by hand: labelled CE + L2 +
    weight * mean masked CE of the strong views (in the labelled batch's forward) on F's eval-mode
    predictions on the weak views."""
    model, x, y, u = _problem()
    by_hand = copy.deepcopy(model)
    flip = lambda images, rng: images.flip(3) + 0.01 * torch.rand(images.shape, generator=rng)  # noqa: E731
    order = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    augment_rng, draws = torch.Generator().manual_seed(2), torch.Generator().manual_seed(5)
    rows = torch.randint(40, (32,), generator=draws)
    shifts = random_shifts(32, 12, 12, 0.25, draws)
    by_hand.eval()
    with torch.no_grad():
        probs = by_hand(weak_view(u[rows], shifts)).softmax(1)
    by_hand.train()
    threshold = float(probs.max(1).values.median())  # confident about some of the images, not all
    confident = probs.max(1).values >= threshold
    assert 0 < int(confident.sum()) < 32

    unlabelled = Unlabelled(u, ratio=2, threshold=threshold, weight=0.7, translation=0.25, generator=torch.Generator().manual_seed(5))
    trainer = ClassifierTrainer(model, total_epochs=1, steps_per_epoch=1, lr=0.0, weight_decay=0.0, damping=0.01)
    trainer.train(x, y, 1, augment=flip, batch_size=16, generator=torch.Generator().manual_seed(1),
                  augment_rng=torch.Generator().manual_seed(2), unlabelled=unlabelled)  # lr 0: the gradient stays to compare

    xl = x[order]
    xl = torch.cat([xl, flip(xl, augment_rng)])
    yl = torch.cat([y[order], y[order]])
    strong = flip(u[rows], augment_rng)
    logits = by_hand(torch.cat([xl, strong]))
    ce_u = F.cross_entropy(logits[32:], probs.argmax(1), reduction="none") * confident
    l2 = sum(p.square().sum() for p in by_hand.head.parameters())
    loss = F.cross_entropy(logits[:32], yl) + 0.7 * ce_u.mean() + 0.005 * l2
    loss.backward()
    for (name, mine), theirs in zip(model.named_parameters(), by_hand.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, msg=name)


def test_without_augmentation_the_strong_view_is_the_weak_view():
    model, x, y, u = _problem(1)
    seen = []
    original = model.forward
    model.forward = lambda images: (seen.append(images.detach().clone()), original(images))[1]
    unlabelled = Unlabelled(u, ratio=1, threshold=0.0, weight=1.0, translation=0.25, generator=torch.Generator().manual_seed(3))
    ClassifierTrainer(model, total_epochs=1, steps_per_epoch=1, lr=1e-3, weight_decay=0.0, damping=0.01).train(
        x, y, 1, augment=None, batch_size=16, generator=torch.Generator().manual_seed(0), unlabelled=unlabelled)
    weak, trained = seen  # the eval-mode pass on the weak views, then the training pass
    assert torch.equal(trained[16:], weak)


def test_unlabelled_refuses_an_empty_pool_and_a_zero_ratio():
    with pytest.raises(ValueError, match="no unlabelled images to train F on"):
        Unlabelled(torch.zeros(0, 1, 4, 4), 1, 0.9, 1.0, 0.1, torch.Generator())
    with pytest.raises(ValueError, match="ratio must be >= 1, got 0"):
        Unlabelled(torch.zeros(3, 1, 4, 4), 0, 0.9, 1.0, 0.1, torch.Generator())


@pytest.mark.parametrize("key, value, message", [
    ("semi.ratio", -1, "semi.ratio must be >= 0 (0: supervised), got -1"),
    ("semi.threshold", 1.5, "semi.threshold must be in [0, 1], got 1.5"),
    ("semi.weight", -0.1, "semi.weight must be a finite number >= 0, got -0.1"),
    ("semi.translation", 0.5, "semi.translation must be in [0, 0.5), got 0.5"),
    ("encoder.target", "test", "encoder.target must be 'validation' or 'pseudo', got 'test'"),
    ("encoder.target_size", -5, "encoder.target_size must be >= 0, got -5"),
])
def test_bad_semi_and_target_keys_are_refused_naming_them(key, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        Config().replace({key: value})


def test_the_semi_presets_are_the_supervised_ones_plus_the_semi_keys():
    from infaug.config import differing_keys

    for setting in ("1pct", "10pct"):
        supervised, semi_supervised = load_preset(f"mnist-{setting}"), load_preset(f"mnist-{setting}-semi")
        assert differing_keys(supervised.to_dict(), semi_supervised.to_dict()) == {"preset", "semi.ratio", "encoder.target"}
        assert semi_supervised.semi.ratio > 0 and semi_supervised.encoder.target == "pseudo"
        assert supervised.semi.ratio == 0 and supervised.encoder.target == "validation"  # the supervised presets stay


# ---- E's target, held out from F ---------------------------------------------------------------


def test_split_unlabelled_is_disjoint_complete_and_seeded():
    train, target = split_unlabelled(1000, 300, seed=4)
    assert len(target) == 300 and len(train) == 700
    assert not set(train.tolist()) & set(target.tolist()) and set(train.tolist()) | set(target.tolist()) == set(range(1000))
    assert torch.equal(split_unlabelled(1000, 300, seed=4)[1], target) and not torch.equal(split_unlabelled(1000, 300, seed=5)[1], target)
    with pytest.raises(ValueError, match=r"encoder.target_size = 1200 must be in \[0, 1000\]"):
        split_unlabelled(1000, 1200, seed=4)


def _digits_task(config, seed=0):
    g = torch.Generator().manual_seed(0)
    pool = Digits(torch.rand(400, 1, 28, 28, generator=g), torch.arange(400) % 10)
    return build_task(config, seed, torch.device("cpu"), pool, None)


TINY = {"data.labelled": 60, "data.validation": 20, "data.test": 100, "classifier.epochs": 3, "classifier.width": 4,
        "classifier.batch_size": 20, "generator.steps": 2, "generator.critic_steps": 1, "generator.batch_size": 16,
        "generator.hidden": 4, "generator.latent": 16, "generator.spatial_latent": 8, "encoder.steps": 2,
        "encoder.batch_size": 16, "encoder.width": 4, "loop.rounds": 1, "loop.last_layer_check": False,
        "semi.ratio": 1, "semi.threshold": 0.0, "encoder.target": "pseudo", "encoder.target_size": 50,
        "encoder.target_threshold": 0.0}


def test_e_target_excludes_every_image_f_trains_on():
    task = _digits_task(Config().replace(TINY))
    assert len(task.target_images) == 50 and len(task.semi_images) == len(task.unlabelled) - 50 == 190
    flat = lambda images: {tuple(i.flatten().tolist()) for i in images}  # noqa: E731 (the pool's images are distinct)
    assert not flat(task.target_images) & flat(task.semi_images)
    assert not flat(task.target_images) & flat(task.train[0]) and not flat(task.target_images) & flat(task.validation[0])
    seen = []
    original = Unlabelled.draw
    Unlabelled.draw = lambda self, count: (seen.append(self.images), original(self, count))[1]
    try:
        run_method("none", task, Config().replace(TINY), 0)
    finally:
        Unlabelled.draw = original
    assert seen and all(images is seen[0] for images in seen) and flat(seen[0]) == flat(task.semi_images)


def test_without_the_pseudo_target_nothing_is_held_out():
    task = _digits_task(Config().replace({**TINY, "encoder.target": "validation"}))
    assert len(task.target_images) == 0 and task.semi_images is task.unlabelled


def test_pseudo_labelled_keeps_the_confident_images_with_f_s_labels():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3, 3, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(10 * torch.eye(3))
    images = torch.tensor([[1.0, 0, 0], [0, 0.01, 0], [0, 0, 1.0], [0, 1.0, 0]]).view(4, 1, 1, 3)
    x, y = pseudo_labelled(model, images, 0.9)
    assert y.tolist() == [0, 2, 1] and torch.equal(x, images[[0, 2, 3]])
    target_x, target_y, count = e_target(model, (images[:1], torch.tensor([2])), images, 0.9)
    assert count == 3 and target_y.tolist() == [2, 0, 2, 1] and len(target_x) == 4  # the validation's true label first
    assert e_target(model, (images[:1], torch.tensor([2])), images[:0], 0.9)[2] == 0


def test_the_pseudo_target_is_what_s_val_is_fitted_on():
    config = Config().replace(TINY)
    task = _digits_task(config)
    model = task.make_classifier()
    *target, count = e_target(model, task.validation, task.target_images, 0.0)
    assert count == 50 and len(target[1]) == 70
    engine = influence_engine(model, task.train, tuple(target), damping=0.01)
    only_validation = influence_engine(model, task.train, task.validation, damping=0.01)
    assert not torch.allclose(engine.s_weight, only_validation.s_weight)


# ---- every method through the same code; resume ------------------------------------------------


def test_every_method_trains_on_the_unlabelled_images_through_the_same_code(monkeypatch):
    config = Config().replace(TINY)
    task = _digits_task(config)
    generator = pretrain(task, config, 0)[0]
    calls = {}
    original = semi.consistency_loss

    def counted(*args, **kwargs):
        calls[method] = calls.get(method, 0) + 1
        return original(*args, **kwargs)

    monkeypatch.setattr("infaug.train.classifier.consistency_loss", counted)
    steps = config.classifier.epochs * -(-40 // config.classifier.batch_size)  # 40 labelled training digits
    for method in METHODS:
        result = run_method(method, task, config, 0, generator=generator)
        judged = 1 + (len(config.encoder.shrink) - 1) * (method == "proposed")  # proposed's round, once per factor
        rounds = config.classifier.epochs - round(config.classifier.epochs * config.loop.warmup)
        assert calls[method] == steps + (judged - 1) * rounds * 2, method  # every step of every candidate
        assert result.rounds[0]["target_pseudo_labelled"] == 50 and torch.isfinite(torch.tensor(result.val_loss))


def test_semi_supervised_resume_after_an_interruption_gives_the_same_result(tmp_path):
    config = Config().replace({**TINY, "classifier.epochs": 4, "run.checkpoint_every": 0.0})
    task = _digits_task(config)
    generator = pretrain(task, config, 0)[0]
    whole = run_method("proposed", task, config, 0, generator=generator)

    class Killed(Exception):
        pass

    checkpoints = Checkpoints(tmp_path, every=0.0)
    phase = checkpoints.phase("proposed")
    saves = []
    original = type(phase).save

    def save_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        saves.append(1)
        if len(saves) == 3:  # after F's second warm-up epoch
            raise Killed

    type(phase).save = save_then_die
    try:
        with pytest.raises(Killed):
            run_method("proposed", task, config, 0, generator=generator, checkpoint=phase)
    finally:
        type(phase).save = original
    saved = checkpoints.phase("proposed").load()
    assert "result" not in saved and 0 < saved["trainer"]["epochs_done"] < 4  # killed in the middle
    resumed = run_method("proposed", task, config, 0, generator=generator, checkpoint=checkpoints.phase("proposed"))
    assert (resumed.val_loss, resumed.test_loss, resumed.test_accuracy) == (whole.val_loss, whole.test_loss, whole.test_accuracy)
    for a, b in zip(resumed.model.state_dict().values(), whole.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
