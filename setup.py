"""Builds actx's operator library for Python: torch_ext/_C*.so, loaded by torch_ext/__init__.py.

    pip install --no-build-isolation .      (a wheel: `make wheel`; in place: `make build`)

The sources come from csrc/sources.txt, the list CMakeLists.txt reads too. CUDA sources join the
build where torch has CUDA and nvcc is found (ACTX_CUDA=0 turns them off); elsewhere the library
is CPU-only. The package metadata is in pyproject.toml; what depends on the torch at hand is here:
the wheel requires exactly that torch release, and torch_ext/_build_info.py records it, so that
importing the package under another torch fails with a clear message instead of an undefined
symbol.
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

    return (
        torch.version.cuda is not None
        and cpp_extension.CUDA_HOME is not None
        and (shutil.which("nvcc") or Path(cpp_extension.CUDA_HOME, "bin", "nvcc").exists())
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
    arch_flags = os.environ.get(
        "ACTX_CUDA_ARCH_FLAGS", "-gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90"
    ).split()
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


def write_build_info():
    """torch_ext/_build_info.py: the versions this build is for (a generated file, not in git)."""
    import torch

    version = (ROOT / "VERSION").read_text().strip()
    (ROOT / "torch_ext" / "_build_info.py").write_text(
        "# Written by setup.py when the library was built.\n"
        f"version = {version!r}\n"
        f"torch_version = {torch.__version__!r}\n"
    )
    return torch.__version__


def torch_requirement(torch_version: str) -> str:
    """torch==<release>: the distribution's version (PyPI's wheels carry no local label such as
    +cu130). The import-time check compares the full version, local label included."""
    return f"torch=={torch_version.split('+')[0]}"


setup(
    packages=find_packages(include=["torch_ext", "torch_ext.*"]),
    install_requires=[torch_requirement(write_build_info())],
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)
