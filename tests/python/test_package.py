"""The Python package: its version, the torch it requires, and (under `make test`) that the suite
tests the installed wheel rather than the checkout."""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import torch_ext

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = os.environ.get("ACTX_TEST_INSTALLED") == "1"


def run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(torch_ext.__file__).parents[1]))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_version_is_the_version_file_with_the_torch_release():
    # 0.1.0+pt2150cu132: actx's release, then the torch release and CUDA variant it was built for.
    release, torch_release = torch.__version__.partition("+")[::2]
    has_cuda = torch._C._dispatch_has_kernel_for_dispatch_key("actx::prelu", "CUDA")
    variant = torch_release if has_cuda else "cpu"
    label = "pt" + release.replace(".", "") + variant
    assert torch_ext.__version__ == (ROOT / "VERSION").read_text().strip() + "+" + label


def test_another_torch_is_a_clear_import_error():
    # As if the installed torch were not the one actx was built for.
    run = run_python("import torch; torch.__version__ = '2.99.0+cpu'; import torch_ext")
    assert run.returncode != 0
    message = run.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError: actx: this build of actx is for torch "), message
    assert torch.__version__ in message and "2.99.0+cpu" in message


@pytest.mark.skipif(not INSTALLED, reason="the suite runs against the checkout (set ACTX_TEST_INSTALLED=1)")
def test_the_installed_wheel_is_under_test():
    location = Path(torch_ext.__file__).resolve()
    assert location.parent != ROOT / "torch_ext" and "site-packages" in location.parts, location
    assert importlib.metadata.version("actx") == torch_ext.__version__
    requires = importlib.metadata.requires("actx")
    assert f"torch=={torch.__version__.split('+')[0]}" in requires, requires
    # Nothing the suite imported put the checkout on sys.path (processes it spawns would import
    # the checkout's package from there).
    assert str(ROOT) not in sys.path
    # The subprocesses of the suite import the same package.
    run = run_python("import torch_ext; print(torch_ext.__file__)")
    assert Path(run.stdout.strip()).resolve() == location, run.stderr
