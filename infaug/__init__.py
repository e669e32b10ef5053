"""infaug: learned data augmentation judged by influence functions.

Public operators (registered under ``torch.ops.infaug`` with CPU and CUDA kernels):
    warp(x, theta_w, theta_b)                      smoothed per-pixel affine flow, bilinear warp
    augment(x, theta_w, theta_b, color_w, color_b) warp followed by a per-image colour transform
    influence(features, labels, weight, bias, s_weight, s_bias)  closed-form last-layer influence
The influence engine: LastLayerInfluence (s_val = H^-1 g_val, I_up, I_aug).
The learned augmentation: Augmenter (E and G as one module), learn_augmenter (for your classifier).
The learning system: infaug.models, infaug.train, infaug.run (``infaug run``).
The pure-torch definitions of the same operators live in ``infaug.reference``.
"""

from infaug._extension import load as _load

_C = _load()  # registers torch.ops.infaug.* before anything refers to them

from infaug.ops import augment, influence, warp  # noqa: E402
from infaug.engine import LastLayerInfluence, last_layer_features  # noqa: E402


def __getattr__(name: str):
    # The learning system (and its dependencies: tqdm, kornia, matplotlib) loads on first use, so
    # `import infaug` for the operators stays as light as the op layer.
    if name == "Augmenter":
        from infaug.augmenter import Augmenter

        return Augmenter
    if name == "learn_augmenter":
        from infaug.learn import learn_augmenter

        return learn_augmenter
    raise AttributeError(f"module 'infaug' has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = ["Augmenter", "LastLayerInfluence", "augment", "influence", "last_layer_features", "learn_augmenter", "warp"]
