"""Builds actx's operator library for Python: torch_ext/_C*.so, loaded by torch_ext/__init__.py.

    pip install --no-build-isolation .      (a wheel: `make wheel`; in place: `make build`)

The sources come from csrc/sources.txt, the list CMakeLists.txt reads too. CUDA sources join the
build where torch has CUDA and nvcc is found (ACTX_CUDA=0 turns them off); elsewhere the library
is CPU-only. The package metadata is in pyproject.toml; what depends on the torch at hand is here:
- the wheel requires exactly that torch release, and torch_ext/_build_info.py records it (in the
  wheel, or beside an in-place library), so that importing the package under another torch fails
  with a clear message instead of an undefined symbol;
- the version carries the torch release and CUDA variant as a local label, 0.1.0+pt2150cu132 for
  torch 2.15.0+cu132 (docs/python.md, "Versions"), so that the wheels of one actx release for
  several torch releases have names of their own;
- each torch release builds in its own folder (build/python-torch<release>).
"""

import os
import shutil
from pathlib import Path

import torch
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from torch.utils import cpp_extension

ROOT = Path(__file__).resolve().parent


def read_sources():
    lines = (ROOT / "csrc" / "sources.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def cuda_available():
    if os.environ.get("ACTX_CUDA", "1") == "0":
        return False
    return (
        torch.version.cuda is not None
        and cpp_extension.CUDA_HOME is not None
        and (shutil.which("nvcc") or Path(cpp_extension.CUDA_HOME, "bin", "nvcc").exists())
    )


def extension(with_cuda: bool):
    sources = read_sources()
    # -fopenmp: at::parallel_for is a header template that runs serially unless its caller is
    # compiled with OpenMP (torch's own OpenMP runtime is the one used at run time).
    cxx_flags = ["-O3", "-DACTX_BUILDING_LIBRARY", "-fopenmp"]
    link_flags = ["-fopenmp"]
    include_dirs = [str(ROOT / "csrc"), str(ROOT / "csrc" / "include")]
    if not with_cuda:
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


def local_label(torch_version: str, with_cuda: bool) -> str:
    """pt<release digits> and the CUDA variant: torch 2.15.0+cu132 gives pt2150cu132 for a library
    with CUDA kernels and pt2150cpu for a CPU-only one."""
    release, _, variant = torch_version.partition("+")
    return "pt" + release.replace(".", "") + (variant if with_cuda and variant else "cpu")


def build_info(version: str, torch_version: str) -> str:
    """torch_ext/_build_info.py: the versions a build is for (generated, not in git)."""
    return (
        f"# Written by setup.py when the library was built.\nversion = {version!r}\ntorch_version = {torch_version!r}\n"
    )


TORCH_VERSION = torch.__version__
WITH_CUDA = cuda_available()
VERSION = (ROOT / "VERSION").read_text().strip() + "+" + local_label(TORCH_VERSION, WITH_CUDA)
BUILD_INFO = build_info(VERSION, TORCH_VERSION)


class BuildPy(build_py):
    """Writes _build_info.py into the package being built (a wheel), not into the source tree, whose
    in-place library may be built against another torch release."""

    def run(self):
        super().run()
        Path(self.build_lib, "torch_ext", "_build_info.py").write_text(BUILD_INFO)


class BuildExtension(cpp_extension.BuildExtension):
    """torch's BuildExtension, which always relinks (ninja rebuilds only the objects that changed);
    an in-place build records its versions beside the library."""

    def run(self):
        super().run()
        if self.inplace:
            (ROOT / "torch_ext" / "_build_info.py").write_text(BUILD_INFO)


setup(
    version=VERSION,
    packages=find_packages(include=["torch_ext", "torch_ext.*"]),
    # torch==<release>: the distribution's version (PyPI's wheels carry no local label such as
    # +cu132). The import-time check compares the full version, local label included.
    install_requires=[f"torch=={TORCH_VERSION.split('+')[0]}"],
    ext_modules=[extension(WITH_CUDA)],
    cmdclass={"build_ext": BuildExtension, "build_py": BuildPy},
    # Each torch release's objects apart, so that switching releases rebuilds nothing twice.
    options={"build": {"build_base": f"build/python-torch{TORCH_VERSION}"}},
)
