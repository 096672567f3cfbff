"""Builds actx's operator library for Python: torch_ext/_C*.so, loaded by torch_ext/__init__.py.

The sources come from csrc/sources.txt, the list CMakeLists.txt reads too. CUDA sources join the
build where torch has CUDA and nvcc is found (ACTX_CUDA=0 turns them off); elsewhere the library
is CPU-only.
"""

import os
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from torch.utils import cpp_extension

ROOT = Path(__file__).resolve().parent


def read_sources():
    lines = (ROOT / "csrc" / "sources.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def cuda_available():
    if os.environ.get("ACTX_CUDA", "1") == "0":
        return False
    import torch

    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None and (
        shutil.which("nvcc") or Path(cpp_extension.CUDA_HOME, "bin", "nvcc").exists()
    )


def extension():
    sources = read_sources()
    # -fopenmp: at::parallel_for is a header template that runs serially unless its caller is
    # compiled with OpenMP (torch's own OpenMP runtime is the one used at run time).
    cxx_flags = ["-O3", "-DACTX_BUILDING_LIBRARY", "-fopenmp"]
    link_flags = ["-fopenmp"]
    include_dirs = [str(ROOT / "csrc"), str(ROOT / "csrc" / "include")]
    if not cuda_available():
        print("actx: building a CPU-only library (torch without CUDA, or nvcc not found)")
        return cpp_extension.CppExtension(
            "torch_ext._C",
            [s for s in sources if not s.endswith(".cu")],
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=link_flags,
        )
    arch_flags = os.environ.get("ACTX_CUDA_ARCH_FLAGS", "-gencode=arch=compute_80,code=sm_80 "
                                "-gencode=arch=compute_90,code=sm_90").split()
    return cpp_extension.CUDAExtension(
        "torch_ext._C",
        sources,
        include_dirs=include_dirs,
        define_macros=[("ACTX_WITH_CUDA", None)],
        extra_link_args=link_flags,
        extra_compile_args={
            "cxx": cxx_flags,
            "nvcc": ["-O3", "-DACTX_BUILDING_LIBRARY", "--expt-relaxed-constexpr", *arch_flags],
        },
    )


setup(
    name="actx",
    version=(ROOT / "VERSION").read_text().strip(),
    description="LeakyReLU and PReLU as PyTorch custom operators",
    packages=find_packages(include=["torch_ext", "torch_ext.*"]),
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)
