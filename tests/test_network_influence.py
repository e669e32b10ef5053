"""NetworkInfluence, influence through all of F's parameters: its Hessian-vector product against the
explicit Gauss-Newton matrix, its solve, I_up against per-sample gradients, its gradient with
respect to the images, and, on a model that is only a last layer, agreement with LastLayerInfluence."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from infaug import LastLayerInfluence
from infaug.engine import InaccurateSolveWarning
from infaug.train.network_influence import NetworkInfluence

from conftest import small_net


class LastLayerOnly(nn.Module):
    """logits = head(flatten(x)): every parameter is the last layer's."""

    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.head = nn.Linear(d, k)

    def forward(self, x):
        return self.head(x.flatten(1))


def flat_grad(net, loss):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(net.parameters()), retain_graph=True)])


def test_hessian_vector_product_is_the_gauss_newton_matrix_times_v():
    net = small_net()
    x, y = torch.rand(6, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (6,))
    engine = NetworkInfluence(net, damping=0.3, batch_size=4).fit(x, y)  # two batches
    net.eval()
    params = list(net.parameters())
    jacobians = []
    for i in range(len(y)):
        logits = net(x[i : i + 1])[0]
        jacobians.append(torch.stack([flat_grad(net, logits[k]) for k in range(3)]))  # (K, P)
    ggn = 0.3 * torch.eye(jacobians[0].shape[1], dtype=torch.float64)
    for i, J in enumerate(jacobians):
        p = net(x[i : i + 1])[0].softmax(0).detach()
        ggn += J.T @ (torch.diag(p) - torch.outer(p, p)) @ J / len(y)
    net.train()
    v = torch.randn(ggn.shape[0], dtype=torch.float64)
    shaped = torch.split(v, [q.numel() for q in params])
    product = engine.hessian_vector_product(tuple(s.reshape(q.shape) for s, q in zip(shaped, params)))
    torch.testing.assert_close(torch.cat([t.reshape(-1) for t in product]), ggn @ v)
    assert net.training


def test_up_is_minus_s_dot_each_samples_gradient_and_its_image_gradient_is_right():
    net = small_net()
    x, y = torch.rand(10, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (10,))
    engine = NetworkInfluence(net, damping=0.5, iterations=200, tol=1e-10).fit(x, y).set_validation(x[:4], y[:4])
    assert engine.solve_info["residual"] < 1e-8
    assert net.training
    s = torch.cat([t.reshape(-1) for t in engine.s])
    net.eval()
    expected = torch.stack([-(s * flat_grad(net, F.cross_entropy(net(x[i : i + 1]), y[i : i + 1]))).sum() for i in range(len(y))])
    net.train()
    torch.testing.assert_close(engine.up(x, y), expected)
    torch.testing.assert_close(engine.aug(x, x.flip(3), y), engine.up(x.flip(3), y) - expected)
    images = x[:3].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda z: engine.up(z, y[:3]), (images,))


def test_solution_satisfies_h_s_equals_the_validation_gradient():
    net = small_net()
    x, y = torch.rand(12, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (12,))
    vx, vy = torch.rand(5, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (5,))
    engine = NetworkInfluence(net, damping=0.2, iterations=300, tol=1e-10).fit(x[:7], y[:7]).fit(x[7:], y[7:])
    engine.set_validation(vx, vy)
    net.eval()
    g = flat_grad(net, F.cross_entropy(net(vx), vy))
    net.train()
    hs = torch.cat([t.reshape(-1) for t in engine.hessian_vector_product(engine.s)])
    torch.testing.assert_close(hs, g, rtol=1e-7, atol=1e-9)


def test_few_iterations_report_the_residual_they_reached_and_warn():
    net = small_net()
    x, y = torch.rand(12, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (12,))
    with pytest.warns(InaccurateSolveWarning, match=r"after 2 conjugate-gradient iterations at damping=0.01; raise"):
        engine = NetworkInfluence(net, damping=0.01, iterations=2, tol=1e-6).fit(x, y).set_validation(x[:5], y[:5])
    assert engine.solve_info["iterations"] == 2 and engine.solve_info["residual"] > 1e-6


def test_on_a_model_that_is_only_a_last_layer_it_is_last_layer_influence():
    torch.manual_seed(1)
    model = LastLayerOnly(6, 4).double()
    x, y = torch.randn(40, 6, dtype=torch.float64), torch.randint(0, 4, (40,))
    vx, vy = torch.randn(15, 6, dtype=torch.float64), torch.randint(0, 4, (15,))
    x_aug = x + 0.3 * torch.randn_like(x)
    network = NetworkInfluence(model, damping=0.05, iterations=500, tol=1e-12).fit(x, y).fit(x_aug, y).set_validation(vx, vy)
    last = LastLayerInfluence(model.head.weight.detach(), model.head.bias.detach(), damping=0.05, method="exact")
    last.fit(x, y).fit(x_aug, y).set_validation(vx, vy)
    torch.testing.assert_close(network.up(x, y), last.up(x, y), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(network.aug(x, x_aug, y), last.aug(x, x_aug, y), rtol=1e-6, atol=1e-9)


def test_errors_name_what_is_wrong():
    net = small_net()
    with pytest.raises(ValueError, match="damping must be > 0"):
        NetworkInfluence(net, damping=0.0)
    with pytest.raises(ValueError, match="iterations must be an int >= 1"):
        NetworkInfluence(net, damping=0.1, iterations=0)
    engine = NetworkInfluence(net, damping=0.1)
    x, y = torch.rand(4, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (4,))
    with pytest.raises(ValueError, match="4 rows but labels 3"):
        engine.fit(x, y[:3])
    with pytest.raises(RuntimeError, match="call fit"):
        engine.set_validation(x, y)
    with pytest.raises(RuntimeError, match="call set_validation"):
        engine.fit(x, y).up(x, y)


def test_the_engine_keeps_f_as_it_was_when_built():
    net = small_net()
    x, y = torch.rand(6, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (6,))
    engine = NetworkInfluence(net, damping=0.5).fit(x, y).set_validation(x[:3], y[:3])
    before = engine.up(x, y)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    torch.testing.assert_close(engine.up(x, y), before)
