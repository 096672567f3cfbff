import sys
from pathlib import Path

# The package is built in place (setup.py build_ext --inplace); import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
