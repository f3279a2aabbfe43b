"""The MTLCC network: recurrent cells, the bidirectional sequential encoder and its classification head."""

from utils.tfquiet import import_tensorflow_quietly

import_tensorflow_quietly()
