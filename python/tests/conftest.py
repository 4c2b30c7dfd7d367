"""Tests the installed package (``pip install ./python``) when there is one, else the source
tree (no install needed); fails early, with the reason, when libblurpool cannot be loaded: these
tests exist to exercise it."""

import sys
from pathlib import Path

import pytest

try:
    import blurpool_torch
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import blurpool_torch  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _library_loads():
    lib = blurpool_torch.lib()  # raises LibraryNotFoundError with the paths it tried
    print(f"\nblurpool_torch from {Path(blurpool_torch.__file__).parent}; libblurpool {lib.version} from {lib.path}")
