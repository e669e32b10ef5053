"""The training parts, each alone: the gradient penalty, E's objective and its gradients, F's
trainer, the loop's schedule."""

import pytest
import torch
from torch import nn

from infaug import LastLayerInfluence, reference
from infaug.models import AllConvNet, Encoder, Generator
from infaug.train.classifier import ClassifierTrainer, evaluate, influence_engine
from infaug.train.encoder import LastLayerObjective, encoder_loss, mean_scaler, tau_penalty, train_encoder
from infaug.train.modes import frozen
from infaug.train.gan import gradient_penalty, pretrain_generator
from infaug.train.loop import round_epochs
from infaug.train.round_judge import choose_shrink_by_round


class LinearCritic(nn.Module):
    """critic(x) = <w, x>: its input gradient is w everywhere, so the penalty is (|w| - 1)^2."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


@pytest.mark.parametrize("norm", [0.5, 1.0, 3.0])
def test_gradient_penalty_of_a_critic_with_known_input_gradient(norm):
    w = torch.randn(1, 4, 4, dtype=torch.float64)
    critic = LinearCritic(w / w.norm() * norm)
    real, fake = torch.rand(8, 1, 4, 4, dtype=torch.float64), torch.rand(8, 1, 4, 4, dtype=torch.float64)
    penalty = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    torch.testing.assert_close(penalty, torch.tensor((norm - 1) ** 2, dtype=torch.float64))
    penalty.backward()  # create_graph: the penalty is differentiable in the critic's parameters
    expected = 2 * (norm - 1) * critic.w.detach() / norm
    torch.testing.assert_close(critic.w.grad, expected)


def test_gradient_penalty_of_a_quadratic_critic():
    # critic(x) = |x|^2 / 2 has input gradient x, so the penalty is (|x_hat| - 1)^2 at the mixed point.
    critic = lambda x: 0.5 * x.flatten(1).square().sum(1)  # noqa: E731
    real, fake = torch.full((2, 3), 1.0, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    generator = torch.Generator().manual_seed(4)
    alpha = torch.rand(2, 1, generator=torch.Generator().manual_seed(4)).double()
    expected = ((alpha.squeeze(1) * 3**0.5) - 1).square().mean()
    torch.testing.assert_close(gradient_penalty(critic, real, fake, generator), expected)


def _problem(dtype=torch.float64, n=12):
    torch.manual_seed(0)
    model = AllConvNet(1, 10, width=4).to(dtype).eval()
    generator = Generator(1, 12, 12, latent=8, spatial_latent=5, hidden=4).to(dtype)
    for layer in (generator.spatial[-1], generator.appearance[-1]):  # away from the identity
        nn.init.normal_(layer.weight, std=0.05)
    nn.init.normal_(generator.spatial_global.weight, std=0.1)
    encoder = Encoder(1, latent=8, width=4, noise=0.5).to(dtype)
    nn.init.normal_(encoder.net[-1].weight, std=0.1)
    x = torch.rand(n, 1, 12, 12, dtype=dtype)
    y = torch.arange(n) % 10
    engine = influence_engine(model, (x, y), (torch.rand(6, 1, 12, 12, dtype=dtype), torch.arange(6)), damping=0.01)
    return model, generator, encoder, engine, x, y


def test_encoder_gradients_through_fused_ops_equal_those_through_the_reference():
    model, generator, encoder, engine, x, y = _problem()
    rows = torch.arange(len(y))
    grads = []
    for ops in (None, reference):
        encoder.zero_grad()
        with frozen(model, generator):
            kwargs = {} if ops is None else {"ops": ops}
            objective = LastLayerObjective(model, engine, x, y, **kwargs)
            loss, _ = encoder_loss(encoder, generator, objective, x, y, rows, penalty=0.5,
                                   rng=torch.Generator().manual_seed(1), **kwargs)
            loss.backward()
        grads.append([p.grad.clone() for p in encoder.parameters()])
    fused, ref = grads
    assert all(g.abs().sum() > 0 for g in fused)  # every parameter of E gets a gradient
    for a, b in zip(fused, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert all(p.grad is None for p in model.parameters()) and all(p.grad is None for p in generator.parameters())


def test_encoder_objective_is_the_mean_i_aug_over_its_scale():
    model, generator, encoder, engine, x, y = _problem()
    objective = LastLayerObjective(model, engine, x, y)
    torch.testing.assert_close(objective.scale, engine.up(model.features(x), y).std())  # sigma: the spread of I_up
    rows = torch.tensor([3, 0, 7, 5])  # a batch of rows: each compared with its own original
    with frozen(model, generator), torch.no_grad():
        loss, mean_i_aug = encoder_loss(encoder, generator, objective, x[rows], y[rows], rows, penalty=0.0,
                                        rng=torch.Generator().manual_seed(2), kl=0.0, clip=0.0)
        tau = encoder(x[rows], generator=torch.Generator().manual_seed(2))
        expected = engine.aug(model.features(x[rows]), model.features(generator(x[rows], tau)), y[rows]).mean()
    torch.testing.assert_close(mean_i_aug, expected)
    torch.testing.assert_close(loss, expected / objective.scale)  # with no penalties and no clip: the mean I_aug / sigma


def test_a_new_objective_is_a_class_with_scale_and_change():
    # The interface E trains against: any object with model, scale and change(x_aug, labels, rows).
    model, generator, _, _, x, y = _problem(torch.float32, n=32)
    target = torch.rand(1, 1, 12, 12)

    class Brightness:  # predicts that an augmentation helps as much as it moves toward a target image
        def __init__(self):
            self.model, self.scale = model, torch.tensor(2.0)

        def change(self, x_aug, labels, rows):
            return (x_aug - target).square().flatten(1).mean(1)

    encoder = Encoder(1, latent=8, width=4, noise=0.0)
    history = train_encoder(encoder, generator, Brightness(), x, y, steps=30, batch_size=32, lr=1e-2, penalty=0.0,
                            rng=torch.Generator().manual_seed(0))
    assert history[-1] < history[0]


def test_training_the_encoder_lowers_the_mean_i_aug():
    model, generator, _, engine, x, y = _problem(torch.float32, n=64)
    encoder = Encoder(1, latent=8, width=4, noise=0.0)  # no noise: the batch's I_aug is a deterministic function of E
    history = train_encoder(encoder, generator, LastLayerObjective(model, engine, x, y), x, y, steps=60, batch_size=64, lr=1e-2, penalty=0.1,
                            rng=torch.Generator().manual_seed(0))
    assert len(history) == 60
    first, last = history[0], sum(history[-5:]) / 5
    assert last < first - 0.1 * abs(first), (first, last)


def _shrink_problem():
    model, generator, encoder, _, x, y = _problem(n=40)
    validation = (torch.rand(20, 1, 12, 12, dtype=torch.float64), torch.arange(20) % 10)
    augment = lambda images, rng: generator(images, encoder(images, generator=rng))  # noqa: E731
    return model, encoder, augment, (x, y), validation


def test_mean_scaler_scales_e_s_mean_and_keeps_its_noise():
    _, encoder, _, (x, _), _ = _shrink_problem()
    trained = encoder.mean(x).detach().clone()
    scale = mean_scaler(encoder)
    scale(0.5)
    torch.testing.assert_close(encoder.mean(x), 0.5 * trained)
    scale(0.0)
    assert torch.count_nonzero(encoder.mean(x)) == 0  # E's mean 0: G's prior
    scale(1.0)
    torch.testing.assert_close(encoder.mean(x), trained)


def _round_problem():
    """F with its trainer, E and G, and a round of F's training on E's augmentations."""
    model, encoder, augment, (x, y), validation = _shrink_problem()
    trainer = ClassifierTrainer(model, total_epochs=4, steps_per_epoch=2, lr=1e-2, weight_decay=0.0, damping=0.01)
    batches, noise = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    train_round = lambda: trainer.train(x, y, 2, augment=augment, batch_size=20, generator=batches, augment_rng=noise)  # noqa: E731
    return model, encoder, trainer, validation, train_round, {"batches": batches, "noise": noise}


def _weights(module):
    return [t.detach().clone() for t in module.state_dict().values()]


def test_choose_shrink_by_round_measures_each_factor_from_the_same_state_and_goes_on_from_the_best():
    model, encoder, trainer, validation, train_round, generators = _round_problem()
    trained, start, draws = _weights(encoder.net[-1]), _weights(model), {k: g.get_state() for k, g in generators.items()}
    factors = (0.0, 0.5, 1.0)
    best, losses, finish = choose_shrink_by_round(encoder, trainer, validation, factors, train_round, generators)
    assert len(losses) == 3 and len(set(losses)) == 3  # E's mean changes the augmentations, so F and its loss
    assert best == factors[losses.index(min(losses))]
    for p, q in zip(_weights(encoder.net[-1]), trained):
        torch.testing.assert_close(p, q * best)  # E keeps the chosen factor
    # F and the generators are back at the round's start until finish()
    assert all(torch.equal(p, q) for p, q in zip(_weights(model), start)) and trainer.epochs_done == 0
    assert all(torch.equal(generators[k].get_state(), v) for k, v in draws.items())
    finish()
    after, after_draws, epochs = _weights(model), {k: g.get_state() for k, g in generators.items()}, trainer.epochs_done
    assert epochs == 2 and evaluate(model, *validation)[0] == min(losses)
    # Each candidate by hand, from a fresh copy of the problem: E scaled by a, one round of F.
    for a, loss in zip(factors, losses):
        model, encoder, trainer, validation, train_round, generators = _round_problem()
        for p, q in zip(encoder.net[-1].parameters(), trained):
            p.data.copy_(q * a)
        train_round()
        assert evaluate(model, *validation)[0] == loss
        if a == best:  # F goes on from exactly this candidate, with its generators' states
            assert all(torch.equal(p, q) for p, q in zip(_weights(model), after))
            assert all(torch.equal(generators[k].get_state(), v) for k, v in after_draws.items())


def test_choose_shrink_by_round_restores_the_optimiser_between_candidates():
    # Two equal factors must give the same loss: the second candidate starts from the first's state,
    # optimiser moments and schedule included, not from where the first left them.
    _, encoder, trainer, validation, train_round, generators = _round_problem()
    _, losses, _ = choose_shrink_by_round(encoder, trainer, validation, (1.0, 1.0), train_round, generators)
    assert losses[0] == losses[1]
    with pytest.raises(ValueError, match="factors: expected at least one factor"):
        choose_shrink_by_round(encoder, trainer, validation, (), train_round, generators)


def test_tau_penalty_is_zero_inside_the_typical_radius():
    assert float(tau_penalty(torch.full((3, 4), 0.9))) == 0.0
    torch.testing.assert_close(tau_penalty(torch.full((2, 4), 2.0)), torch.tensor(4.0 - (1 + 3 * 0.5**0.5)))
    prior = torch.randn(10000, 128, generator=torch.Generator().manual_seed(0))
    assert float(tau_penalty(prior)) < 1e-3  # prior draws are almost never penalised


def test_frozen_restores_modes_and_flags():
    model = AllConvNet(1, 10, width=4).train()
    model.head.weight.requires_grad_(False)
    with frozen(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.training and not model.head.weight.requires_grad and model.head.bias.requires_grad


def test_classifier_trainer_adds_the_damping_as_l2_on_the_head():
    model = AllConvNet(1, 3, width=4)
    trainer = ClassifierTrainer(model, total_epochs=1, steps_per_epoch=1, lr=1e-3, weight_decay=0.0, damping=0.1)
    x, y = torch.rand(4, 1, 12, 12), torch.tensor([0, 1, 2, 0])
    model.eval()
    plain = nn.functional.cross_entropy(model(x), y)
    l2 = model.head.weight.square().sum() + model.head.bias.square().sum()
    torch.testing.assert_close(trainer.loss(x, y), plain + 0.05 * l2)


def test_classifier_learns_a_separable_problem():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 12, 12) * 0.1
    y = torch.arange(64) % 2
    x[y == 1, :, :6] += 0.8  # class 1: a bright top half
    model = AllConvNet(1, 2, width=4)
    trainer = ClassifierTrainer(model, total_epochs=15, steps_per_epoch=4, lr=1e-2, weight_decay=0.0, damping=0.01)
    history = trainer.train(x, y, 15, augment=None, batch_size=16, generator=torch.Generator().manual_seed(0))
    assert history[-1] < history[0]
    assert evaluate(model, x, y)[1] == 1.0


def test_influence_engine_uses_the_head_and_the_damping():
    model, _, _, engine, x, y = _problem()
    assert isinstance(engine, LastLayerInfluence) and engine.damping == 0.01
    assert torch.equal(engine.weight, model.head.weight.detach()) and engine.solve_info["residual"] < 1e-8


def test_round_epochs():
    assert round_epochs(60, 3, 0.5) == [30, 10, 10, 10]
    assert round_epochs(10, 3, 0.5) == [5, 2, 2, 1]
    assert sum(round_epochs(7, 4, 0.0)) == 7


def test_pretrain_generator_moves_g_from_the_identity_and_records_finite_losses():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 12, 12)
    g = Generator(1, 12, 12, latent=8, spatial_latent=5, hidden=4)
    history = pretrain_generator(g, images, steps=4, critic_steps=2, batch_size=16, rng=torch.Generator().manual_seed(0))
    assert len(history.generator_loss) == 4 and len(history.image_penalty) == 4
    with torch.no_grad():
        moved = g(images[:8], g.sample_latent(8))
    assert not torch.allclose(moved, images[:8])


def _one_step_gradients(layout, width=16, dtype=torch.float32):
    torch.manual_seed(0)
    model = AllConvNet(1, 10, width).to(dtype)
    model = model.to(memory_format=layout)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(32, 1, 28, 28, generator=g, dtype=dtype)
    y = torch.randint(0, 10, (32,), generator=g)
    nn.functional.cross_entropy(model(x), y).backward()
    return [p.grad.detach().double() for p in model.parameters()]


def test_channels_last_f_step_is_within_its_stated_tolerance_of_nchw():
    # classifier.channels_last (the default) runs F's convolutions and batch norms in NHWC. Its
    # batch-norm reductions round differently: every parameter's gradient of one step is within
    # 1e-2 of NCHW's relative in norm (measured: at most about 3e-3 at width 64, 1e-3 at 16),
    # while NCHW and NHWC in float64 agree to 1e-10: the difference is rounding, not another function.
    nchw, nhwc = _one_step_gradients(torch.contiguous_format), _one_step_gradients(torch.channels_last)
    for a, b in zip(nchw, nhwc, strict=True):
        assert float((a - b).norm() / a.norm()) < 1e-2
    exact = zip(_one_step_gradients(torch.contiguous_format, dtype=torch.float64),
                _one_step_gradients(torch.channels_last, dtype=torch.float64), strict=True)
    for a, b in exact:
        assert float((a - b).norm() / a.norm()) < 1e-10


def test_channels_last_f_training_is_bitwise_reproducible():
    def train():
        torch.manual_seed(0)
        model = AllConvNet(1, 10, 8).to(memory_format=torch.channels_last)
        trainer = ClassifierTrainer(model, total_epochs=2, steps_per_epoch=2, lr=1e-2, weight_decay=5e-4, damping=0.01)
        g = torch.Generator().manual_seed(2)
        x, y = torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
        trainer.train(x, y, 2, augment=lambda v, rng: v.flip(3), batch_size=32, generator=torch.Generator().manual_seed(3))
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(train(), train(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_task_builds_f_in_the_configured_layout(channels_last):
    from infaug.config import Config
    from infaug.data import Digits
    from infaug.train.task import build_task

    g = torch.Generator().manual_seed(0)
    pool = Digits(torch.rand(400, 1, 28, 28, generator=g), torch.arange(400) % 10)
    config = Config().replace({"data.labelled": 100, "data.validation": 20, "data.test": 100,
                               "classifier.channels_last": channels_last})
    weight = build_task(config, 0, torch.device("cpu"), pool, None).make_classifier().body[1][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) == channels_last
