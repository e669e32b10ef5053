"""The networks of the learning system: shapes, and G's identity at a zero output."""

import pytest
import torch

import infaug
from infaug.models import MLP, AllConvNet, Critic, Encoder, Generator, PointEncoder, TranslationGenerator, resnet56, sampling_field
from infaug.reference import base_grid


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32)])
def test_generator_zero_output_is_the_identity(channels, size):
    g = Generator(channels, size, size)
    x = torch.rand(3, channels, size, size)
    tau = g.sample_latent(3, generator=torch.Generator().manual_seed(0))
    theta_w, theta_b, color_w, color_b = g.transform_parameters(tau)
    assert torch.equal(theta_w, torch.tensor([1.0, 0, 0, 1]).view(1, 4, 1, 1).expand(3, 4, size, size))
    assert torch.equal(theta_b, torch.zeros(3, 2, size, size))
    assert torch.equal(color_w, torch.eye(channels).expand(3, channels, channels))
    assert torch.equal(color_b, torch.zeros(3, channels))
    assert torch.equal(g(x, tau), x)
    torch.testing.assert_close(g.sampling_field(tau), base_grid(size, size, align_corners=False, dtype=torch.float32, device="cpu").expand(3, 2, size, size))


def test_generator_moves_away_from_identity_once_its_last_layers_are_not_zero():
    torch.manual_seed(0)
    g = Generator(1, 28, 28)
    for layer in (g.spatial[-1], g.appearance[-1]):
        torch.nn.init.normal_(layer.weight, std=0.01)
    x = torch.rand(2, 1, 28, 28)
    y = g(x, g.sample_latent(2))
    assert y.shape == x.shape and not torch.allclose(y, x)


@pytest.mark.parametrize("height, width", [(28, 28), (32, 32), (30, 21)])
def test_generator_parameter_shapes(height, width):
    g = Generator(3, height, width, latent=16, spatial_latent=10, hidden=8)
    theta_w, theta_b, color_w, color_b = g.transform_parameters(torch.randn(5, 16))
    assert theta_w.shape == (5, 4, height, width) and theta_b.shape == (5, 2, height, width)
    assert color_w.shape == (5, 3, 3) and color_b.shape == (5, 3)
    assert theta_w.is_contiguous() and theta_b.is_contiguous()


def test_generator_rejects_a_bad_split_of_tau():
    with pytest.raises(ValueError, match="spatial_latent must lie in"):
        Generator(1, 28, 28, latent=8, spatial_latent=8)


def test_classifier_shapes():
    net = AllConvNet(1, 10, width=8)
    x = torch.rand(4, 1, 28, 28)
    assert net(x).shape == (4, 10) and net.features(x).shape == (4, 32)
    torch.testing.assert_close(net.head(net.features(x)), net(x))
    resnet = resnet56(3, 10)
    assert resnet(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) for m in resnet.modules()) == 55  # + the head: 56
    assert isinstance(resnet.head, torch.nn.Linear) and resnet.features(torch.rand(1, 3, 32, 32)).shape == (1, 64)
    mlp = MLP(2, 2, 16)
    assert mlp(torch.rand(7, 2)).shape == (7, 2) and mlp.features(torch.rand(7, 2)).shape == (7, 16)


def test_last_layer_features_finds_the_head():
    net = AllConvNet(1, 10, width=8)
    x = torch.rand(3, 1, 28, 28)
    features, weight, bias = infaug.last_layer_features(net, x)
    assert weight is net.head.weight and bias is net.head.bias
    torch.testing.assert_close(features, net.features(x))


def test_critic_and_encoder_shapes():
    assert Critic(1)(torch.rand(5, 1, 28, 28)).shape == (5,)
    assert Critic(2, width=8)(torch.rand(5, 2, 32, 32)).shape == (5,)
    e = Encoder(3, latent=16)
    x = torch.rand(4, 3, 32, 32)
    assert e(x).shape == (4, 16)
    assert PointEncoder(2, 2)(torch.rand(6, 2)).shape == (6, 2)


def test_untrained_encoder_samples_the_prior_and_is_seeded():
    e = Encoder(1, latent=64, noise=1.0)
    x = torch.rand(256, 1, 28, 28)
    with torch.no_grad():
        tau = e(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(e.mean(x), torch.zeros(256, 64))  # zero-initialised mean: the prior N(0, I)
    assert abs(float(tau.mean())) < 0.02 and abs(float(tau.std()) - 1) < 0.02
    assert torch.equal(tau, e(x, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(tau, e(x, generator=torch.Generator().manual_seed(1)))


def test_sampling_field_of_a_translation_is_a_shifted_grid():
    theta_w = torch.tensor([1.0, 0, 0, 1]).view(1, 4, 1, 1).repeat(1, 1, 8, 8)
    theta_b = torch.tensor([0.25, -0.5]).view(1, 2, 1, 1).repeat(1, 1, 8, 8)
    field = sampling_field(theta_w, theta_b, 3)
    grid = base_grid(8, 8, align_corners=False, dtype=torch.float32, device="cpu")
    torch.testing.assert_close(field[0], grid + torch.tensor([0.25, -0.5]).view(2, 1, 1))


def test_translation_generator():
    g = TranslationGenerator(0.5)
    x = torch.zeros(3, 2)
    torch.testing.assert_close(g(x, torch.ones(3, 2)), torch.full((3, 2), 0.5))


def test_heuristic_strength_scales_every_range_but_not_the_ranges_themselves():
    from infaug.augmentations import AffineRanges, HeuristicAugmentation

    ranges = AffineRanges(strength=2.0)
    assert ranges.rotation == 15.0 and ranges.scaled() == AffineRanges(rotation=30.0, translation=0.2, scale=0.2,
                                                                        shear=0.3, brightness=0.2, contrast=0.4)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    still = HeuristicAugmentation(AffineRanges(strength=0.0))(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(still, x, atol=1e-5, rtol=0)
