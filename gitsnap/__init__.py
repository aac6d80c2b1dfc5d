"""gitsnap: version machine-learning model checkpoints inside git.

Importing this package is cheap on purpose: it pulls in neither torch nor dvc
(nor numpy). The library facade is :mod:`gitsnap.api`.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
