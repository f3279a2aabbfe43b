"""The MTLCC network: recurrent cells, the bidirectional sequential encoder and its classification head."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
