"""The library's own exceptions: every failure that is not a bad argument.

Bad arguments raise the built-in :class:`ValueError` or :class:`TypeError`, naming the
argument, what was expected and what was received. Failures that only show while the library
runs (an ODE that diverges, training that blows up, a file that is corrupted or belongs to
another run) raise one of the classes below. Each derives from the built-in exception a
caller would already catch for it, and from :class:`SitransportError`, so
``except sitransport.errors.SitransportError`` catches all of them.

Example:
    >>> from sitransport.errors import SitransportError, TransportError
    >>> issubclass(TransportError, RuntimeError), issubclass(TransportError, SitransportError)
    (True, True)
"""

from __future__ import annotations

__all__ = [
    "CheckpointMismatchError",
    "CorruptFileError",
    "NonFiniteOutputError",
    "SitransportError",
    "TrainingDivergedError",
    "TransportError",
]


class SitransportError(Exception):
    """Base class of the library's own exceptions."""


class TransportError(SitransportError, RuntimeError):
    """An ODE or SDE solve failed: the state became non-finite, or the solver hit its step
    limit. The message says which solve, at which time, and what to try."""


class TrainingDivergedError(SitransportError, FloatingPointError):
    """Training diverged: a non-finite loss or gradient, or a loss that grew by orders of
    magnitude. The message names the step and what to try (a smaller ``lr``, ``clip_grad``)."""


class NonFiniteOutputError(SitransportError, FloatingPointError):
    """A method's result came out non-finite (nan or inf) from finite arguments: the flow's
    normalisation, network weights or path coefficients are non-finite, or so extreme that the
    result overflows its dtype. The message names the method and what to try."""


class CorruptFileError(SitransportError, ValueError):
    """A saved flow or checkpoint is truncated, corrupted (its checksum does not match) or not
    a file this library wrote. The message names the file."""


class CheckpointMismatchError(SitransportError, ValueError):
    """A checkpoint was written by a run with other settings or other data than the one asked
    to resume from it. The message lists every field that differs."""
