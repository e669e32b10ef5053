"""Loads infaug's compiled operators first, or says exactly what to run to build them."""

from types import ModuleType

import torch

_BUILD_HINT = (
    "Build it against the installed torch from the infaug source tree with "
    "`pip install --no-build-isolation .` (or `pip install --no-build-isolation -e .` to develop)."
)


def load() -> ModuleType:
    """Imports ``infaug._C``, which registers the ``torch.ops.infaug`` operators."""
    try:
        from infaug import _C
    except ImportError as error:
        raise ImportError(
            f"infaug's compiled extension (infaug._C) could not be loaded: {error}. "
            f"Installed torch is {torch.__version__}. {_BUILD_HINT}"
        ) from error
    if _C.torch_version != torch.__version__:
        raise ImportError(
            f"infaug's compiled extension was built for torch {_C.torch_version}, but torch "
            f"{torch.__version__} is installed. {_BUILD_HINT}"
        )
    return _C
