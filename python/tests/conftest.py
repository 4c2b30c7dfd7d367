"""Makes the package importable from a source checkout (no install needed) and fails early,
with the reason, when libblurpool.so cannot be loaded: these tests exist to exercise it."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import blurpool_torch  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _library_loads():
    lib = blurpool_torch.lib()  # raises LibraryNotFoundError with the paths it tried
    print(f"\nlibblurpool {lib.version} from {lib.path}")
