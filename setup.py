"""Builds infaug's compiled operators against the installed torch.

    pip install --no-build-isolation .        # the fast path: compiled now, against this torch
    pip install .                             # also works: see below

With build isolation, pip builds in a fresh environment that has no torch (pyproject.toml does not
ask for one: a torch installed there would be another one than the torch that runs). The wheel is
then pure Python with the C++/CUDA sources inside (infaug/_csrc), and the first ``import infaug``
compiles them against the torch it runs with, once, into a cache (see infaug/_extension.py).

The C++ (CPU) kernels are always built. The CUDA kernels are built when the installed torch has CUDA
and nvcc is found (CUDA_HOME), for the GPUs present, or TORCH_CUDA_ARCH_LIST, or, with neither,
infaug._build.DEFAULT_CUDA_ARCHS. Switches:
    FORCE_CUDA=1         build the CUDA kernels even without a visible GPU (fails if that is impossible)
    INFAUG_FORCE_CPU=1   never build the CUDA kernels
"""

import importlib.util
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("infaug_build", os.path.join(ROOT, "infaug", "_build.py"))
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

try:
    import torch
except ImportError:  # an isolated build: the extension is compiled at first import instead
    torch = None


def _build_cuda() -> bool:
    from torch.utils.cpp_extension import CUDA_HOME

    if build.env_flag("INFAUG_FORCE_CPU"):
        return False
    possible = torch.version.cuda is not None and CUDA_HOME is not None
    if build.env_flag("FORCE_CUDA"):
        if not possible:
            raise RuntimeError(
                "FORCE_CUDA=1 but the CUDA kernels cannot be built: "
                f"torch {torch.__version__} has CUDA {torch.version.cuda}, nvcc found at CUDA_HOME={CUDA_HOME}. "
                "Install a CUDA build of torch and the CUDA toolkit, or unset FORCE_CUDA."
            )
        return True
    return possible


def _extensions():
    if torch is None:
        print("infaug: torch is not importable in this build environment (pip's build isolation); the wheel carries "
              "the C++ sources and `import infaug` compiles them once against the torch it runs with. "
              "`pip install --no-build-isolation .` compiles them now instead.")
        return []
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    with_cuda = _build_cuda()
    sources = [os.path.relpath(s, ROOT) for s in build.sources(os.path.join(ROOT, "csrc"), with_cuda)]
    cxx = build.cxx_flags(torch.__version__, with_cuda)
    if with_cuda:
        if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
            os.environ["TORCH_CUDA_ARCH_LIST"] = build.DEFAULT_CUDA_ARCHS
            print(f"infaug: no GPU visible and TORCH_CUDA_ARCH_LIST unset; compiling for {build.DEFAULT_CUDA_ARCHS}")
        return [CUDAExtension("infaug._C", sources, extra_compile_args={"cxx": cxx, "nvcc": build.nvcc_flags(torch.__version__)},
                              extra_link_args=build.LINK_FLAGS)]
    return [CppExtension("infaug._C", sources, extra_compile_args={"cxx": cxx}, extra_link_args=build.LINK_FLAGS)]


class BuildPyWithSources(build_py):
    """Puts csrc/ into the wheel as infaug/_csrc, for the build at first import."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "infaug", "_csrc")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(os.path.join(ROOT, "csrc"), target)


commands = {"build_py": BuildPyWithSources}
if torch is not None:
    from torch.utils.cpp_extension import BuildExtension

    commands["build_ext"] = BuildExtension

setup(ext_modules=_extensions(), cmdclass=commands)
