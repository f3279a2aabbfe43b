"""Data, I/O and command-line helpers of the MTLCC re-implementation."""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) is noise for the user of a command-line tool.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
