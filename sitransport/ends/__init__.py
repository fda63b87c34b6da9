"""What a density is: the ends of a transport and the coordinates they are normalised in.

:class:`Normalization` is the change of coordinates ``z = (x - m) / s`` that
:func:`sitransport.fit` builds before training.
"""

from __future__ import annotations

from sitransport.ends.normalization import Normalization

__all__ = ["Normalization"]
