"""actx: LeakyReLU and PReLU as PyTorch operators (torch.ops.actx.*), with C++ autograd.

Importing the package loads the compiled operator library; everything else here is thin typed
wrappers and nn modules around torch.ops.actx.
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch


def _library_path() -> Path:
    # ACTX_LIBRARY names another build of the same library (for example CMake's libactx.so).
    if os.environ.get("ACTX_LIBRARY"):
        return Path(os.environ["ACTX_LIBRARY"])
    here = Path(__file__).resolve().parent
    candidates = sorted(here.glob("_C*.so"))
    if not candidates:
        raise ImportError(
            f"actx: no compiled library (_C*.so) in {here}; build it with "
            "`make build` (or `python setup.py build_ext --inplace`)"
        )
    return candidates[0]


try:
    from . import _build_info  # written by setup.py when it builds the library
except ImportError:  # not built by setup.py yet (a CMake build may be named by ACTX_LIBRARY)
    _build_info = None

__version__ = _build_info.version if _build_info else "0+unknown"


def _check_torch_version() -> None:
    # A C++ extension only loads under the torch it was built against; under another one the
    # loader's undefined-symbol error would not say what to do.
    if _build_info is None:
        return
    torch_version = _build_info.torch_version
    if torch.__version__ != torch_version:
        raise ImportError(
            f"actx: this build of actx is for torch {torch_version}, but torch {torch.__version__} is "
            f"installed; rebuild actx against the installed torch (pip install --no-build-isolation "
            f"--force-reinstall actx's source, or `make build`), or install torch {torch_version}"
        )


_check_torch_version()
torch.ops.load_library(str(_library_path()))

from . import compat, inductor, nn  # noqa: E402
from .functional import bias_leaky_relu, leaky_relu, leaky_relu_, prelu  # noqa: E402
from .nn import replace_activations  # noqa: E402

inductor._install()


def backward_masks_enabled() -> bool:
    """Whether autograd keeps bits instead of the input for the backward on the CPU (True, the
    default: one bit per element for leaky_relu and bias_leaky_relu, two with a clamp; prelu's output
    and one bit per element) or the input, as torch does (False; also when ACTX_BACKWARD_MASKS=0 is
    set before actx loads). docs/memory.md says what each keeps. Compiled functions are not affected:
    Inductor chooses what they keep."""
    return torch.ops.actx._backward_masks()


def set_backward_masks(enabled: bool) -> bool:
    """Chooses what autograd keeps for the calls made from now on (see backward_masks_enabled);
    returns the setting before."""
    if not isinstance(enabled, bool):
        raise TypeError(f"actx: set_backward_masks expected `enabled` to be a bool, got {type(enabled).__name__}")
    return torch.ops.actx._set_backward_masks(enabled)


@contextlib.contextmanager
def backward_masks(enabled: bool) -> Iterator[None]:
    """set_backward_masks(enabled) inside the block, and the setting before it after."""
    before = set_backward_masks(enabled)
    try:
        yield
    finally:
        set_backward_masks(before)


def cpu_capability() -> str:
    """The instruction set of the CPU kernels: 'scalar', 'avx2', 'avx512' or 'zen4' (AMD Zen 4:
    avx512's instructions, avx2's loops where Zen 4 runs them faster)."""
    return torch.ops.actx._cpu_capability()


def set_cpu_capability(capability: str) -> str:
    """Chooses the instruction set of the CPU kernels (an error if this CPU lacks it)."""
    return torch.ops.actx._set_cpu_capability(capability)


__all__ = [
    "__version__",
    "bias_leaky_relu",
    "leaky_relu",
    "leaky_relu_",
    "prelu",
    "nn",
    "compat",
    "inductor",
    "replace_activations",
    "backward_masks",
    "backward_masks_enabled",
    "set_backward_masks",
    "cpu_capability",
    "set_cpu_capability",
]
