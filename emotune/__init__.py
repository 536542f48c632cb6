"""emotune: find, train and explain text emotion classifiers over GloVe embeddings."""

from __future__ import annotations

__version__ = "0.1.0"
