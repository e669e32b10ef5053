"""infaug.Augmenter: the learned augmentation as a module of its own, saved and loaded."""

import pytest
import torch
from torch import nn

import infaug
from infaug.models import Encoder, Generator


def _augmenter(with_encoder=True):
    torch.manual_seed(0)
    g = Generator(1, 28, 28)
    for layer in (g.spatial[-1], g.appearance[-1]):
        nn.init.normal_(layer.weight, std=0.02)
    e = Encoder(1, noise=0.7) if with_encoder else None
    if e is not None:
        nn.init.normal_(e.net[-1].weight, std=0.1)
    return infaug.Augmenter(g, e)


@pytest.mark.parametrize("with_encoder", [True, False])
def test_save_and_load_give_the_same_output_for_the_same_seed(tmp_path, with_encoder):
    augmenter = _augmenter(with_encoder)
    path = augmenter.save(tmp_path / "aug.pt")
    assert not list(tmp_path.glob("*.tmp"))
    loaded = infaug.Augmenter.load(path)
    assert (loaded.encoder is None) == (not with_encoder)
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        a = augmenter(x, generator=torch.Generator().manual_seed(3))
        b = loaded(x, generator=torch.Generator().manual_seed(3))
        c = loaded(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_return_params_replays_the_augmentation():
    augmenter = _augmenter()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        y, params = augmenter(x, generator=torch.Generator().manual_seed(0), return_params=True)
        torch.testing.assert_close(y, infaug.augment(x, *params, smooth=augmenter.generator.smooth).clamp(0, 1))


def test_wrong_input_shape_and_wrong_file_are_clear_errors(tmp_path):
    augmenter = _augmenter()
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        augmenter(torch.rand(2, 3, 28, 28))
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an infaug Augmenter file"):
        infaug.Augmenter.load(tmp_path / "other.pt")


def test_augmenter_in_a_plain_training_loop():
    augmenter = _augmenter()
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        x_aug = augmenter(x, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(x_aug, x)
    loss = nn.functional.cross_entropy(model(torch.cat([x, x_aug])), torch.cat([y, y]))
    loss.backward()
    optimizer.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_temperature_scales_the_prior_draw_and_is_saved(tmp_path):
    augmenter = _augmenter(with_encoder=False)
    hot = infaug.Augmenter(augmenter.generator, temperature=1.5)
    x = torch.rand(5, 1, 28, 28)
    torch.testing.assert_close(hot.latent(x, torch.Generator().manual_seed(2)),
                               1.5 * augmenter.latent(x, torch.Generator().manual_seed(2)))
    loaded = infaug.Augmenter.load(hot.save(tmp_path / "hot.pt"))
    assert loaded.temperature == 1.5
    with torch.no_grad():
        assert torch.equal(loaded(x, generator=torch.Generator().manual_seed(1)), hot(x, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got 0"):
        infaug.Augmenter(augmenter.generator, temperature=0)


@pytest.mark.parametrize("scale", [1.0, 0.75])
def test_an_untrained_encoder_is_random_g_at_its_noise_scale(scale):
    """E's mean starts at zero, so an untrained E with noise t draws what random_g draws at
    temperature t."""
    torch.manual_seed(0)
    g = Generator(1, 28, 28)
    for layer in (g.spatial[-1], g.appearance[-1]):
        nn.init.normal_(layer.weight, std=0.02)
    untrained = infaug.Augmenter(g, Encoder(1, noise=scale))
    prior = infaug.Augmenter(g, None, temperature=scale)
    other = infaug.Augmenter(g, None, temperature=scale + 0.25)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        a = untrained(x, generator=torch.Generator().manual_seed(1))
        b = prior(x, generator=torch.Generator().manual_seed(1))
        c = other(x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-4)
