import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

if os.environ.get("ACTX_TEST_INSTALLED") == "1":
    # `make test`: the suite runs against the package installed in the environment (the wheel);
    # the checkout must not be importable, or it would be tested instead.
    import torch_ext

    assert Path(torch_ext.__file__).resolve().parent != ROOT / "torch_ext", (
        f"ACTX_TEST_INSTALLED=1 but torch_ext was imported from the checkout ({torch_ext.__file__}); "
        "run pytest from outside the repository"
    )
else:
    # Development: the package as built in place (`make build`), imported from the checkout.
    sys.path.insert(0, str(ROOT))

# The benchmarks (not part of the package) are tested too, and their networks serve the tests.
sys.path.insert(0, str(ROOT / "benchmarks"))
