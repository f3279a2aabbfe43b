"""Data, I/O and command-line helpers of the MTLCC re-implementation."""

from utils.tfquiet import import_tensorflow_quietly

import_tensorflow_quietly()
