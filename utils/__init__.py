"""Data, I/O and command-line helpers of the MTLCC re-implementation."""

from utils import tfquiet

tfquiet.install()
