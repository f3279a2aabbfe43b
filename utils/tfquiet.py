"""Import TensorFlow without its C++ start-up chatter (oneDNN notice, CUDA probing, CPU feature hints).

TF 2.21 logs these through absl before ``TF_CPP_MIN_LOG_LEVEL`` takes effect, so they are captured from the
stderr file descriptor during the import and only lines that are not known start-up noise are passed on.
"""

import os
import sys
import tempfile

NOISE = (
    "All log messages before absl::InitializeLog",
    "port.cc:153] oneDNN custom operations",
    "cudart_stub.cc",
    "cpu_feature_guard.cc",
    "To enable the following instructions",
    "rebuild TensorFlow with the appropriate compiler flags",
    "failed call to cuInit",
)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and probe for GPUs) once, dropping the known start-up messages from stderr."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices("GPU")  # CUDA probing logs now, not at the first op
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip() and not any(noise in line for noise in NOISE):
                    print(line, file=sys.stderr)
