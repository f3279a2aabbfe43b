"""The MTLCC network: recurrent cells, the bidirectional sequential encoder and its classification head."""

from utils import tfquiet

tfquiet.install()
