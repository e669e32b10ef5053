"""Baseline augmentations: the hand-designed policies practitioners pick today, from kornia.

:class:`KorniaPolicy` wraps ``kornia.augmentation.auto.TrivialAugment`` and
``kornia.augmentation.auto.RandAugment`` (kornia 0.8.1) the way a kornia user applies them: one
call on a float batch (N, C, H, W) in [0, 1]. Each call picks its operation(s) once for the whole
batch (TrivialAugment: one operation drawn uniformly from its 12; RandAugment: ``n`` distinct
operations out of its 15, applied in sequence at the fixed magnitude ``m`` on kornia's 0..30 scale)
and draws the per-image magnitudes (TrivialAugment) and the per-image on/off of the sign-dependent
geometric operations. These are the baselines a learned augmentation has to beat; nothing here is
learned and no gradient flows (the call runs under ``torch.no_grad()``).

The wrapper adds three things to the plain kornia call: a ``torch.Generator`` makes a call
reproducible without touching the caller's global RNG, one-channel images are handled (see
:class:`KorniaPolicy`), and the result is clamped to [0, 1].

Example:

>>> import torch
>>> from infaug.baselines import KorniaPolicy
>>> policy = KorniaPolicy("randaugment", channels=1, n=2, m=10)
>>> x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
>>> y = policy(x, generator=torch.Generator().manual_seed(1))
>>> print(y.shape, y.dtype, bool(y.min() >= 0 and y.max() <= 1))
torch.Size([4, 1, 28, 28]) torch.float32 True
>>> torch.equal(y, policy(x, generator=torch.Generator().manual_seed(1)))
True
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["POLICIES", "KorniaPolicy", "scaled_trivialaugment_policy"]

POLICIES = ("trivialaugment", "randaugment")

# Used when the caller gives neither: the setting of kornia's own RandAugment docstring example
# (``RandAugment(n=2, m=10)``), close to the paper's ImageNet/CIFAR settings (N=2, M=9..14 of 30).
RANDAUGMENT_DEFAULTS = {"n": 2, "m": 10}


def scaled_trivialaugment_policy(scale: float) -> list:
    """kornia's default TrivialAugment policy with the width of every magnitude range times
    ``scale`` in (0, 1], around the operation's identity: rotate, shear and translate ranges
    (-a, a) become (-scale a, scale a); contrast, brightness and sharpness factors (0.1, 1.9)
    become 1 -+ 0.9 scale. auto_contrast, equalize, posterize and solarize keep their ranges
    (their magnitudes have no identity in the middle of the range). ``scale`` 1 is kornia's policy."""
    from kornia.augmentation.auto.trivial_augment.trivial_augment import default_policy

    if not (isinstance(scale, (int, float)) and 0 < scale <= 1):
        raise ValueError(f"scale must be a number in (0, 1], got {scale!r}")
    policy = []
    for ((op, low, high),) in default_policy:
        if scale != 1 and op in ("rotate", "shear_x", "shear_y", "translate_x", "translate_y", "contrast", "brightness", "sharpness"):
            middle = (low + high) / 2
            low, high = middle + scale * (low - middle), middle + scale * (high - middle)
        policy.append([(op, low, high)])
    return policy


def _build(name: str, options: dict) -> torch.nn.Module:
    from kornia.augmentation.auto import RandAugment, TrivialAugment

    if name == "trivialaugment":
        options = dict(options)
        scale = options.pop("scale", 1.0)
        if scale != 1.0:
            options["policy"] = scaled_trivialaugment_policy(scale)
        return TrivialAugment(**options)
    return RandAugment(**{**RANDAUGMENT_DEFAULTS, **options})


class KorniaPolicy(torch.nn.Module):
    """kornia's TrivialAugment or RandAugment applied to float image batches in [0, 1].

    Args:
        name: ``"trivialaugment"`` or ``"randaugment"``.
        channels: image channels, 1 (grey) or 3 (RGB).
        **options: passed to the kornia constructor unchanged: for RandAugment ``n`` (operations per
            call) and ``m`` (magnitude, kornia accepts 0 < m < 30; defaults n=2, m=10), ``policy``
            and ``transformation_matrix_mode`` for both; for TrivialAugment also ``scale`` in (0, 1],
            kornia's default policy with narrower magnitude ranges (:func:`scaled_trivialaugment_policy`). kornia's own errors (e.g. a ValueError for
            ``m=30``, a TypeError for an unknown option) come through as they are.

    One-channel images are repeated to three channels, the policy is applied, and the three
    channels are averaged back to one. The reason: RandAugment's ``color`` operation
    (``RandomSaturation``) goes through an RGB->HSV conversion and raises ``ValueError: Input size
    must have a shape of (*, 3, H, W)`` on a one-channel batch, so a plain kornia RandAugment fails
    on grey images in every call that draws it (2 calls in 15 at n=2). Every other operation in both
    default policies (auto_contrast, equalize, invert, rotate, posterize, solarize, solarize_add,
    contrast, brightness, sharpness, shear_x/y, translate_x/y) runs on one channel and, given the
    same seed, gives exactly channel 0 of its result on the grey image repeated to RGB; on such an
    image the channels stay identical and ``color`` is the identity (a grey pixel has no
    saturation). So the repeat-apply-average route is what a plain kornia call on grey input would
    give wherever it does not fail, draws the same random numbers, and keeps ``color`` as the no-op
    it is on grey images. The mean equals ``kornia.color.rgb_to_grayscale`` here (its weights sum to
    one and the channels are equal) up to rounding.

    Randomness: kornia draws from torch's global RNG (and, for a CUDA batch, from that device's
    CUDA RNG). With ``generator`` the call draws one seed from it, seeds the CPU RNG (and the
    batch's CUDA device) with that seed inside ``torch.random.fork_rng`` and so leaves the caller's
    global RNG state as it was; the same generator state gives the same output. Without
    ``generator`` kornia uses the global RNG as it normally does.

    kornia 0.8.1 behaviours kept as they are (this is the baseline as kornia users get it): one
    operation choice per call for the whole batch, not per image; the "symmetric" geometric
    operations (rotate, shear, translate) multiply their magnitude by a random 0/1 mask, so half of
    the images are left unchanged by them and the other half move in the positive direction only.
    """

    def __init__(self, name: str, *, channels: int, **options) -> None:
        super().__init__()
        if name not in POLICIES:
            raise ValueError(f"name must be one of {', '.join(map(repr, POLICIES))}; got {name!r}")
        if isinstance(channels, bool) or channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {channels!r}")
        self.name = name
        self.channels = channels
        self.options = dict(options)
        self.policy = _build(name, self.options)

    def extra_repr(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"name={self.name!r}, channels={self.channels}{opts}"

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment ``x`` (N, C, H, W), float in [0, 1]; returns the same shape, dtype and device."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape (N, {self.channels}, H, W); got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor in [0, 1]; got dtype {x.dtype}")
        if generator is None:
            return self._apply(x)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        cuda = x.device.type == "cuda"
        with torch.random.fork_rng(devices=[x.device] if cuda else []):
            # Seed only the generators the call draws from: torch.manual_seed would also seed
            # (lazily, outside the fork) every CUDA device, which would disturb the caller's RNG.
            torch.random.default_generator.manual_seed(seed)
            if cuda:
                with torch.cuda.device(x.device):
                    torch.cuda.manual_seed(seed)
            return self._apply(x)

    def _apply(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            y = x.expand(-1, 3, -1, -1) if self.channels == 1 else x
            y = self.policy(y.contiguous())
            if self.channels == 1:
                y = y.mean(dim=1, keepdim=True)
            return y.clamp(0.0, 1.0).to(dtype=x.dtype)  # out of place: never write into x
