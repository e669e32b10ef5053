"""Builds infaug's compiled operators against the installed torch.

    pip install --no-build-isolation .        # or -e . for development

The C++ (CPU) kernels are always built. The CUDA kernels are built when the installed torch has CUDA
and nvcc is found (CUDA_HOME), for the GPUs present or TORCH_CUDA_ARCH_LIST. Switches:
    FORCE_CUDA=1         build the CUDA kernels even without a visible GPU (fails if that is impossible)
    INFAUG_FORCE_CPU=1   never build the CUDA kernels
"""

import glob
import os

import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def _build_cuda() -> bool:
    if _flag("INFAUG_FORCE_CPU"):
        return False
    possible = torch.version.cuda is not None and CUDA_HOME is not None
    if _flag("FORCE_CUDA"):
        if not possible:
            raise RuntimeError(
                "FORCE_CUDA=1 but the CUDA kernels cannot be built: "
                f"torch {torch.__version__} has CUDA {torch.version.cuda}, nvcc found at CUDA_HOME={CUDA_HOME}. "
                "Install a CUDA build of torch and the CUDA toolkit, or unset FORCE_CUDA."
            )
        return True
    return possible and bool(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")))


def _extension():
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    with_cuda = _build_cuda()
    # The version string lets `import infaug` refuse an extension built against another torch.
    defines = [f'-DINFAUG_TORCH_VERSION="{torch.__version__}"']
    cxx = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"] + defines
    # at::parallel_for only runs in parallel when the caller is compiled with OpenMP; link the same
    # libgomp that torch loads (its soname matches, so one runtime serves both).
    link = ["-fopenmp"]
    if with_cuda:
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        nvcc = ["-O3", "-lineinfo", "-DINFAUG_WITH_CUDA"] + defines
        return CUDAExtension(
            "infaug._C",
            sources,
            extra_compile_args={"cxx": cxx + ["-DINFAUG_WITH_CUDA"], "nvcc": nvcc},
            extra_link_args=link,
        )
    return CppExtension("infaug._C", sources, extra_compile_args={"cxx": cxx}, extra_link_args=link)


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension},
)
