"""Stand-ins for things this machine lacks (a GPU and its NVML library), importable by the name the code uses."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

FAKES = Path(__file__).resolve().parent


@contextmanager
def fake_pynvml() -> Iterator[ModuleType]:
    """Make `import pynvml` find `tests/fakes/pynvml.py` (reset, no GPUs) until the block ends.

    `tests/fakes` goes first on `sys.path` and any cached `pynvml` (the real nvidia-ml-py) leaves `sys.modules`;
    both are put back afterwards, so the fake never leaks into other tests.
    """
    saved = sys.modules.pop("pynvml", None)
    sys.path.insert(0, str(FAKES))
    importlib.invalidate_caches()
    try:
        fake = importlib.import_module("pynvml")
        assert Path(fake.__file__ or "").parent == FAKES, f"imported {fake.__file__}, not the fake"
        fake.configure()
        yield fake
    finally:
        while str(FAKES) in sys.path:
            sys.path.remove(str(FAKES))
        sys.modules.pop("pynvml", None)
        # Put back only the real module: a fake found cached on the way in (another block's, left by a thread
        # that imported it while that block was open) must not outlive this one either.
        if saved is not None and Path(saved.__file__ or "").parent != FAKES:
            sys.modules["pynvml"] = saved
        importlib.invalidate_caches()
