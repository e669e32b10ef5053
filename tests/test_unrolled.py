"""UnrolledObjective, E's objective measured after F's gradient steps: its value against the steps
taken by hand, its gradient in the augmentations (float64 gradcheck), its first-order agreement with
the gradient alignment, and that F is left as it was."""

import pytest
import torch
import torch.nn.functional as F

from infaug.train.unrolled import UnrolledObjective

from conftest import small_net


def data(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def test_after_equals_gradient_descent_taken_by_hand():
    net = small_net()
    x, y = data()
    vx, vy = data(4, seed=2)
    value = UnrolledObjective(net, (vx, vy), steps=2, lr=0.3).after(x, y)
    by_hand = [p.detach().clone() for p in net.parameters()]
    net.eval()
    for _ in range(2):
        with torch.no_grad():
            for p, q in zip(net.parameters(), by_hand):
                p.copy_(q)
        grads = torch.autograd.grad(F.cross_entropy(net(x), y), list(net.parameters()))
        by_hand = [q - 0.3 * g for q, g in zip(by_hand, grads)]
    with torch.no_grad():
        for p, q in zip(net.parameters(), by_hand):
            p.copy_(q)
        expected = F.cross_entropy(net(vx), vy)
    torch.testing.assert_close(value, expected)


def test_delta_is_differentiable_in_the_augmentations():
    net = small_net()
    x, y = data(4)
    objective = UnrolledObjective(net, data(3, seed=2), steps=2, lr=0.5)
    x_aug = (x.flip(3) + 0.01).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: objective.delta(x, z, y), (x_aug,))
    assert objective.delta(x, x, y).detach().item() == 0.0  # the originals in the augmentations' place: no change
    assert net.training


def test_one_small_step_is_minus_lr_times_the_gradient_alignment():
    net = small_net()
    x, y = data(5)
    x_aug = (x + 0.2 * torch.rand_like(x)).clamp(0, 1)
    vx, vy = data(4, seed=3)
    lr = 1e-5
    delta = UnrolledObjective(net, (vx, vy), steps=1, lr=lr).delta(x, x_aug, y)
    net.eval()
    params = list(net.parameters())
    g_val = torch.autograd.grad(F.cross_entropy(net(vx), vy), params)
    g_aug = torch.autograd.grad(F.cross_entropy(net(torch.cat([x, x_aug])), torch.cat([y, y])), params)
    g_orig = torch.autograd.grad(F.cross_entropy(net(torch.cat([x, x])), torch.cat([y, y])), params)
    expected = -lr * sum(((a - b) * v).sum() for a, b, v in zip(g_aug, g_orig, g_val))
    torch.testing.assert_close(delta, expected, rtol=1e-3, atol=0)


def test_f_is_left_as_it_was_and_errors_name_the_argument():
    net = small_net()
    before = [p.detach().clone() for p in net.parameters()]
    x, y = data()
    objective = UnrolledObjective(net, data(3, seed=2), steps=3, lr=1.0)
    objective.delta(x, x.flip(2), y)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before))
    with torch.no_grad():  # F training on afterwards does not change the objective
        first = objective.after(x, y)
        for p in net.parameters():
            p.add_(1.0)
    torch.testing.assert_close(objective.after(x, y), first)
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        UnrolledObjective(net, data(3), steps=0, lr=0.1)
    with pytest.raises(ValueError, match="lr must be > 0, got 0.0"):
        UnrolledObjective(net, data(3), steps=1, lr=0.0)
    with pytest.raises(ValueError, match="as many labels as images"):
        UnrolledObjective(net, (x, y[:2]), steps=1, lr=0.1)
    with pytest.raises(ValueError, match=r"x_aug must have x's shape \(6, 1, 8, 8\)"):
        objective.delta(x, x[:2], y)
