"""The kornia baselines (infaug.baselines.KorniaPolicy): shapes, range, reproducibility, RNG
hygiene, one-channel handling and argument checks."""

import doctest

import pytest
import torch
import torch.nn.functional as F

import infaug.baselines
from infaug.baselines import KorniaPolicy

NAMES = ["trivialaugment", "randaugment"]
CHANNELS = [1, 3]
SIZES = [28, 32]


def smooth_images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images: 4x4 noise upsampled bicubically, rescaled to [0.1, 0.9] per image."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, channels, 4, 4, generator=g), size=(size, size), mode="bicubic", align_corners=False)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return 0.1 + 0.8 * (x - lo) / (hi - lo)


def square_images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Digit-like: a bright square (random place and side) on black, with blurred edges."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, channels, size, size)
    for i in range(n):
        side = int(torch.randint(size // 4, size // 2, (1,), generator=g))
        r, c = (int(v) for v in torch.randint(2, size - side - 2, (2,), generator=g))
        colour = 0.6 + 0.4 * torch.rand(channels, 1, 1, generator=g)
        x[i, :, r : r + side, c : c + side] = colour
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False).clamp(0, 1)


def batch(kind: str, channels: int, size: int, n: int = 8, seed: int = 0) -> torch.Tensor:
    return (smooth_images if kind == "smooth" else square_images)(n, channels, size, seed)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_range_and_changes_real_images(name, channels, size):
    policy = KorniaPolicy(name, channels=channels)
    for kind in ["smooth", "square"]:
        x = batch(kind, channels, size)
        x_before = x.clone()
        changed_calls = moved_images = 0
        for seed in range(6):
            y = policy(x, generator=gen(seed))
            assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
            assert torch.isfinite(y).all()
            assert y.min() >= 0 and y.max() <= 1
            # per image: did the call move it visibly?
            moved = (y - x).abs().amax(dim=(1, 2, 3)) > 1e-2
            changed_calls += bool(moved.any())
            moved_images += int(moved.sum())
            assert torch.equal(x, x_before), "the input batch was modified in place"
        # Each call applies one (TrivialAugment) or n=2 (RandAugment) operations to the whole batch;
        # on these images nearly every call moves some of the 8 images, and most images move
        # (the geometric ops leave about half of the images alone; see the module docstring).
        assert changed_calls >= 5, (kind, changed_calls)
        assert moved_images >= 29, (kind, moved_images)  # of 6 x 8 = 48


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name", NAMES)
def test_float64_keeps_dtype(name, channels):
    x = smooth_images(4, channels, 28).double()
    y = KorniaPolicy(name, channels=channels)(x, generator=gen(0))
    assert y.dtype == torch.float64 and y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name", NAMES)
def test_generator_seed_reproducible_and_seeds_differ(name, channels):
    policy = KorniaPolicy(name, channels=channels)
    x = smooth_images(8, channels, 32)
    a = policy(x, generator=gen(123))
    torch.manual_seed(999)  # the global RNG must not matter when a generator is given
    b = policy(x, generator=gen(123))
    assert torch.equal(a, b)
    # a fresh module gives the same result too: nothing hidden in the module's state
    c = KorniaPolicy(name, channels=channels)(x, generator=gen(123))
    assert torch.equal(a, c)
    outs = [policy(x, generator=gen(s)) for s in range(6)]
    distinct = [o for i, o in enumerate(outs) if not any(torch.equal(o, p) for p in outs[:i])]
    assert len(distinct) >= 4, f"only {len(distinct)} distinct outputs for 6 seeds"
    assert not torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name", NAMES)
def test_generator_call_leaves_global_rng_alone(name, channels):
    policy = KorniaPolicy(name, channels=channels)
    x = smooth_images(4, channels, 28)
    torch.manual_seed(7)
    state = torch.get_rng_state()
    g = gen(5)
    gstate = g.get_state()
    policy(x, generator=g)
    assert torch.equal(torch.get_rng_state(), state)
    # the generator itself is advanced (one seed drawn), so consecutive calls differ
    assert not torch.equal(g.get_state(), gstate)
    assert not torch.equal(policy(x, generator=g), policy(x, generator=gen(5)))


@pytest.mark.parametrize("name", NAMES)
def test_without_generator_uses_global_rng_like_kornia(name):
    policy = KorniaPolicy(name, channels=3)
    x = smooth_images(6, 3, 32)
    torch.manual_seed(3)
    ours = policy(x)
    state_after = torch.get_rng_state()
    torch.manual_seed(3)
    theirs = policy.policy(x).clamp(0, 1)  # the plain kornia module, as a kornia user calls it
    assert torch.equal(ours, theirs)
    assert torch.equal(torch.get_rng_state(), state_after)  # the same draws were consumed
    torch.manual_seed(4)
    assert not torch.equal(policy(x), ours)


def test_grey_trivialaugment_matches_plain_kornia_on_one_channel():
    """Every TrivialAugment operation runs on one channel; the repeat/average route gives the same
    result from the same random draws."""
    policy = KorniaPolicy("trivialaugment", channels=1)
    x = square_images(8, 1, 28)
    for seed in range(12):
        torch.manual_seed(seed)
        ours = policy(x)
        torch.manual_seed(seed)
        theirs = policy.policy(x).clamp(0, 1)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_grey_randaugment_works_where_plain_kornia_fails():
    """kornia's RandAugment `color` op (RandomSaturation) raises on one channel; the wrapper does
    not, and where plain kornia succeeds both agree."""
    policy = KorniaPolicy("randaugment", channels=1, n=2, m=10)
    x = smooth_images(8, 1, 28)
    failed = 0
    for seed in range(30):
        torch.manual_seed(seed)
        ours = policy(x)  # must not raise
        assert ours.shape == x.shape and ours.min() >= 0 and ours.max() <= 1
        torch.manual_seed(seed)
        try:
            theirs = policy.policy(x)
        except ValueError as e:
            assert "3, H, W" in str(e)
            failed += 1
            continue
        torch.testing.assert_close(ours, theirs.clamp(0, 1), rtol=0, atol=1e-6)
    assert failed > 0, "expected plain kornia RandAugment to fail on some 1-channel calls"


def test_grey_is_repeated_grey_rgb():
    """A grey batch gives the mean over channels of the same policy on that batch repeated to RGB
    (which keeps its three channels equal)."""
    x = smooth_images(6, 1, 32)
    for name in NAMES:
        grey = KorniaPolicy(name, channels=1)(x, generator=gen(11))
        rgb = KorniaPolicy(name, channels=3)(x.repeat(1, 3, 1, 1), generator=gen(11))
        torch.testing.assert_close(rgb[:, 1:], rgb[:, :1].expand(-1, 2, -1, -1), rtol=0, atol=1e-6)
        torch.testing.assert_close(grey, rgb.mean(dim=1, keepdim=True), rtol=0, atol=1e-6)


def test_randaugment_options_pass_through():
    policy = KorniaPolicy("randaugment", channels=3, n=1, m=5)
    assert policy.policy.n == 1 and policy.policy.m == 5
    default = KorniaPolicy("randaugment", channels=3)
    assert default.policy.n == 2 and default.policy.m == 10
    x = smooth_images(8, 3, 32)
    outs_n1 = [policy(x, generator=gen(s)) for s in range(3)]
    outs_n3 = [KorniaPolicy("randaugment", channels=3, n=3, m=5)(x, generator=gen(s)) for s in range(3)]
    assert any(not torch.equal(a, b) for a, b in zip(outs_n1, outs_n3))
    # magnitude matters: same seed, same op choice, different strength
    a = KorniaPolicy("randaugment", channels=3, n=2, m=2)(x, generator=gen(0))
    b = KorniaPolicy("randaugment", channels=3, n=2, m=25)(x, generator=gen(0))
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="m"):
        KorniaPolicy("randaugment", channels=3, n=2, m=30)  # kornia's own check: 0 < m < 30


def test_trivialaugment_policy_option_passes_through():
    policy = KorniaPolicy("trivialaugment", channels=1, policy=[[("brightness", 0.1, 1.9)]])
    assert len(policy.policy) == 1
    x = square_images(8, 1, 28)
    y = policy(x, generator=gen(0))
    # brightness only (kornia's is additive): on the unclamped pixels each image moves by one offset
    assert not torch.equal(y, x)
    for xi, yi in zip(x, y):
        inside = (yi > 1e-4) & (yi < 1 - 1e-4)
        shift = (yi - xi)[inside]
        if shift.numel():
            assert shift.max() - shift.min() < 1e-5
    with pytest.raises(TypeError):
        KorniaPolicy("trivialaugment", channels=3, n=2)


@pytest.mark.parametrize("bad", ["autoaugment", "TrivialAugment", "", "rand_augment"])
def test_bad_name_raises(bad):
    with pytest.raises(ValueError) as info:
        KorniaPolicy(bad, channels=3)
    msg = str(info.value)
    assert "name" in msg and "trivialaugment" in msg and "randaugment" in msg and repr(bad) in msg


@pytest.mark.parametrize("bad", [0, 2, 4, True, "3"])
def test_bad_channels_raises(bad):
    with pytest.raises(ValueError, match="channels") as info:
        KorniaPolicy("trivialaugment", channels=bad)
    assert repr(bad) in str(info.value)


def test_channels_is_keyword_only_and_required():
    with pytest.raises(TypeError):
        KorniaPolicy("trivialaugment", 3)
    with pytest.raises(TypeError):
        KorniaPolicy("trivialaugment")


def test_input_checks():
    policy = KorniaPolicy("trivialaugment", channels=1)
    with pytest.raises(ValueError, match="shape"):
        policy(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="shape"):
        policy(torch.rand(1, 28, 28))
    with pytest.raises(ValueError, match="floating"):
        policy(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


def test_no_gradient():
    x = smooth_images(2, 3, 28).requires_grad_()
    y = KorniaPolicy("randaugment", channels=3)(x, generator=gen(0))
    assert not y.requires_grad


def test_docstring_example_runs():
    result = doctest.testmod(infaug.baselines, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_scaled_trivialaugment_policy_narrows_the_ranges_around_the_identity():
    from kornia.augmentation.auto.trivial_augment.trivial_augment import default_policy

    from infaug.baselines import scaled_trivialaugment_policy

    assert scaled_trivialaugment_policy(1.0) == [list(p) for p in default_policy]
    half = {op: (low, high) for ((op, low, high),) in scaled_trivialaugment_policy(0.5)}
    assert half["rotate"] == (-15.0, 15.0) and half["translate_x"] == (-0.25, 0.25)
    assert half["contrast"] == pytest.approx((0.55, 1.45)) and half["posterize"] == (0.0, 4)
    with pytest.raises(ValueError, match="scale must be a number in"):
        scaled_trivialaugment_policy(0.0)
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    plain, same = KorniaPolicy("trivialaugment", channels=1), KorniaPolicy("trivialaugment", channels=1, scale=1.0)
    assert torch.equal(plain(x, torch.Generator().manual_seed(5)), same(x, torch.Generator().manual_seed(5)))
