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

import importlib

# Each public name and the module that defines it. None is imported with the package: `import
# infaug` (and so `import infaug.config`, or any other part) loads no compiled extension and no
# heavy dependency; the first use of a name imports its module (the operators: infaug.ops, which
# loads the extension and registers torch.ops.infaug.*).
_PUBLIC = {
    "warp": "infaug.ops",
    "augment": "infaug.ops",
    "influence": "infaug.ops",
    "LastLayerInfluence": "infaug.engine",
    "last_layer_features": "infaug.engine",
    "Augmenter": "infaug.augmenter",
    "learn_augmenter": "infaug.learn",
}


def __getattr__(name: str):
    if name == "_C":  # the compiled extension itself (with_cuda, torch_version), loaded by infaug.ops
        return importlib.import_module("infaug.ops")._C
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'infaug' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_PUBLIC))


__version__ = "0.1.0"
__all__ = ["Augmenter", "LastLayerInfluence", "augment", "influence", "last_layer_features", "learn_augmenter", "warp"]
