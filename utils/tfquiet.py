"""Import TensorFlow without its C++ start-up chatter (oneDNN notice, CUDA probing, CPU feature hints).

TF 2.21 logs these through absl before ``TF_CPP_MIN_LOG_LEVEL`` takes effect, so they are captured from the
stderr file descriptor during the import and only lines that are not known start-up noise are passed on.

:func:`install` puts a finder on ``sys.meta_path`` that does this whenever TensorFlow is first imported, by
whichever module (``import tensorflow``, ``import keras``); importing ``utils`` or ``modelzoo`` installs it, so that
modules which need only numpy (``utils.metrics``, ``utils.georef``, …) do not load TensorFlow.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

NOISE = (
    "All log messages before absl::InitializeLog",
    "port.cc:153] oneDNN custom operations",
    "cudart_stub.cc",
    "cpu_feature_guard.cc",
    "To enable the following instructions",
    "rebuild TensorFlow with the appropriate compiler flags",
    "failed call to cuInit",
)


@contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Capture file descriptor 2 and pass on only the lines that are not known start-up noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip() and not any(noise in line for noise in NOISE):
                    print(line, file=sys.stderr)


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader with stderr filtered, then probes the GPUs (CUDA logs then, not at the first op)."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _filtered_stderr():
            self.loader.exec_module(module)
            module.config.list_physical_devices("GPU")


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` through the other finders and wraps its loader in :class:`_QuietLoader`."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Make the first import of TensorFlow, wherever it happens, quiet (once per process; no-op once imported)."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
