"""The ``elastic`` baseline: Simard et al.'s smoothed random displacement field, composed with the
heuristic's affine transform and applied by infaug's own warp."""

import math

import pytest
import torch

from infaug.augmentations import (AffineRanges, ElasticAugmentation, HeuristicAugmentation, elastic_field, gaussian_kernel,
                                  random_affine, random_colour)
from infaug.config import load_preset
from infaug.train.methods import make_augmentation


def _field(n=1500, sigma=4.0, alpha=34.0, seed=0):
    return elastic_field(n, 28, 28, alpha=alpha, sigma=sigma, generator=torch.Generator().manual_seed(seed)).double()


def test_field_has_mean_zero_and_the_smoothings_spread():
    field = _field()
    centre = field[:, :, 10:18, 10:18]  # away from the borders' reflection
    kernel = gaussian_kernel(4.0, 12)
    spread = 34.0 * math.sqrt(float((torch.outer(kernel, kernel) ** 2).sum()) / 3)  # alpha * sqrt(sum k^2 * Var U(-1, 1))
    assert abs(spread - 34.0 / (math.sqrt(12 * math.pi) * 4.0)) < 0.02  # the continuous Gaussian's value
    assert abs(float(field.mean())) < 0.03 * spread
    assert float(centre.std()) == pytest.approx(spread, rel=0.04)
    for axis in (0, 1):  # both axes alike
        assert float(centre[:, axis].std()) == pytest.approx(spread, rel=0.05)


@pytest.mark.parametrize("lag", [2, 4, 8])
def test_field_correlation_falls_as_the_gaussians(lag):
    """Smoothing white noise by a Gaussian of sigma correlates entries d pixels apart by exp(-d^2 / 4 sigma^2)."""
    field = _field()
    a, b = field[:, :, 10:18, 6:14].reshape(-1), field[:, :, 10:18, 6 + lag:14 + lag].reshape(-1)
    correlation = float((a * b).mean() / (a.std() * b.std()))
    assert correlation == pytest.approx(math.exp(-lag**2 / (4 * 4.0**2)), abs=0.04)


def test_field_scales_with_alpha_and_is_white_without_smoothing():
    assert torch.allclose(_field(n=8, alpha=17.0), _field(n=8, alpha=34.0) / 2)
    raw = _field(n=200, sigma=0.0, alpha=1.0)
    assert float(raw.abs().max()) <= 1 and float(raw.std()) == pytest.approx(1 / math.sqrt(3), rel=0.02)
    a, b = raw[..., :-1].reshape(-1), raw[..., 1:].reshape(-1)
    assert abs(float((a * b).mean())) < 0.01  # neighbours independent


def test_zero_strength_is_the_identity():
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    still = ElasticAugmentation(AffineRanges(strength=0.0), alpha=0.0, sigma=4.0)(x, torch.Generator().manual_seed(2))
    assert torch.equal(still, x)
    config = load_preset("mnist-1pct").replace({"elastic.strength": 0.0})
    augment = make_augmentation("elastic", _ImagesTask(), config, None, None)
    assert torch.equal(augment(x, torch.Generator().manual_seed(2)), x)


def test_without_the_field_it_draws_what_the_heuristic_draws():
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    ranges = AffineRanges(strength=1.5)
    heuristic = HeuristicAugmentation(ranges)(x, torch.Generator().manual_seed(4))
    assert torch.equal(ElasticAugmentation(ranges, alpha=0.0, sigma=4.0)(x, torch.Generator().manual_seed(4)), heuristic)


def test_the_field_displaces_pixels_as_warp_samples():
    """With no affine part, output pixel p samples the input at p + d(p): a smooth image is moved by the field."""
    h = w = 28
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    ramp = (cols / (w - 1)).view(1, 1, h, w).repeat(3, 1, 1, 1)  # value = column / 27: linear, so bilinear sampling is exact
    augment = ElasticAugmentation(AffineRanges(strength=0.0), alpha=20.0, sigma=4.0)
    out = augment(ramp, torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)
    random_affine(3, AffineRanges(strength=0.0).scaled(), generator=generator)
    random_colour(3, 1, AffineRanges(strength=0.0).scaled(), generator=generator)  # the draws before the field
    field = elastic_field(3, h, w, alpha=20.0, sigma=4.0, generator=generator)
    expected = ((cols + field[:, 0]) / (w - 1)).clamp(0, 1).unsqueeze(1)
    inside = (cols + field[:, 0] >= 0) & (cols + field[:, 0] <= w - 1) & (rows + field[:, 1] >= 0) & (rows + field[:, 1] <= h - 1)
    assert float(field.abs().max()) > 1.5  # the field moves pixels by more than a pixel
    assert torch.allclose(out[:, 0][inside], expected[:, 0][inside], atol=1e-5)


def test_is_reproducible_by_generator_and_keeps_range_dtype_device():
    x = torch.rand(4, 1, 28, 28)
    augment = ElasticAugmentation(AffineRanges(), alpha=34.0, sigma=4.0)
    a, b = augment(x, torch.Generator().manual_seed(7)), augment(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and not torch.equal(a, augment(x, torch.Generator().manual_seed(8)))
    assert a.dtype == x.dtype and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.allclose(a, x)
    assert augment(x.double(), torch.Generator().manual_seed(7)).dtype == torch.float64


def test_bad_alpha_or_sigma_is_refused():
    with pytest.raises(ValueError, match="alpha and sigma must be finite numbers >= 0, got alpha=-1"):
        ElasticAugmentation(AffineRanges(), alpha=-1.0, sigma=4.0)
    with pytest.raises(ValueError, match=r"config: elastic.sigma must be a finite number >= 0, got nan"):
        load_preset("default").replace({"elastic.sigma": float("nan")})


def test_small_images_smooth_within_their_size():
    field = elastic_field(2, 8, 8, alpha=34.0, sigma=4.0, generator=torch.Generator().manual_seed(0))
    assert field.shape == (2, 2, 8, 8) and torch.isfinite(field).all()


def test_the_method_does_not_take_points():
    task = _ImagesTask()
    task.kind = "points"
    with pytest.raises(ValueError, match="elastic"):
        make_augmentation("elastic", task, load_preset("default"), None, None)


class _ImagesTask:
    kind = "images"


def test_gaussian_kernel_is_symmetric_and_sums_to_one():
    kernel = gaussian_kernel(4.0, 12)
    assert float(kernel.sum()) == pytest.approx(1.0) and torch.equal(kernel, kernel.flip(0))
    assert float(kernel[12] / kernel[16]) == pytest.approx(math.exp(0.5))  # one sigma out
