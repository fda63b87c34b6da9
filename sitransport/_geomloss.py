"""geomloss, imported once without the start-up notice KeOps prints on stdout (first thing
when sitransport is imported: POT imports geomloss too).

With the optional ``keops`` extra installed, importing geomloss imports pykeops, whose
configuration prints ``[KeOps] Warning : CUDA libraries not found ...`` on every machine
without a GPU. A library must not write to its user's stdout (the demo's output, a doctest,
a script's report), so the import runs with stdout captured: that CPU-only notice is dropped,
anything else KeOps says is raised as a :class:`UserWarning`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import warnings
from types import ModuleType

__all__ = ["geomloss", "legacy"]

#: KeOps's notices that say only that no GPU is used (dropped).
CPU_NOTICES = ("CUDA libraries not found", "no GPUs found on this system")


@functools.cache
def geomloss() -> ModuleType:
    """The ``geomloss`` module, imported quietly (see the module docstring).

    Example:
        >>> geomloss().SamplesLoss.__name__
        'SamplesLoss'
    """
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        import geomloss as module
    said = [
        line
        for line in buffer.getvalue().splitlines()
        if line.strip() and not any(notice in line for notice in CPU_NOTICES)
    ]
    if said:
        warnings.warn("geomloss/KeOps: " + " ".join(said), UserWarning, stacklevel=2)
    return module


def legacy() -> tuple[ModuleType, ModuleType]:
    """geomloss 0.3's Sinkhorn loop and sample softmins
    (``geomloss._legacy.sinkhorn_divergence``, ``.sinkhorn_samples``).

    Raises:
        ImportError: the installed geomloss does not provide them (the loop moved).

    Example:
        >>> divergence, samples = legacy()
        >>> callable(divergence.sinkhorn_loop), callable(samples.softmin_tensorized)
        (True, True)
    """
    geomloss()
    try:
        from geomloss._legacy import sinkhorn_divergence, sinkhorn_samples
    except ImportError as err:  # pragma: no cover - depends on the installed geomloss
        raise ImportError(
            "the entropic couplings drive geomloss's Sinkhorn loop "
            "(geomloss._legacy.sinkhorn_divergence.sinkhorn_loop, geomloss 0.3.x), which this "
            f"geomloss does not provide ({err}); install geomloss>=0.3,<0.4"
        ) from err
    return sinkhorn_divergence, sinkhorn_samples


geomloss()  # now, at sitransport's import, before POT imports it with the notice
