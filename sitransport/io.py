"""Saved flows: :func:`load` for every flow kind, and their file format in one place.

A file written by :meth:`TransportFlow.save <sitransport.TransportFlow.save>` or
:meth:`LatentFlow.save <sitransport.latent.LatentFlow.save>` holds only tensors and plain
data (read back with ``weights_only=True``, so no code from a file ever runs) together with
their SHA-256, verified on loading (files written before checksums load unchecked). The data
is the flow's *payload* (``to_payload()``), a dict headed by its format name and version:

===============================  ==============  =========================================
``"format"``                     ``"version"``   payload
===============================  ==============  =========================================
``"sitransport.TransportFlow"``  2 (reads 1, 2)  :meth:`~sitransport.TransportFlow.to_payload`
``"sitransport.LatentFlow"``     1               :meth:`~sitransport.latent.LatentFlow.to_payload`
===============================  ==============  =========================================

Each flow class writes and checks its own payload (``FORMAT``, ``VERSION``,
``READABLE_VERSIONS``, ``to_payload``, ``from_payload``), since its ``save`` writes it;
this module reads a file, finds the kind from the header (:data:`FLOW_KINDS`) and hands the
payload to that class. Layers: ``io`` imports the flow modules, never the reverse.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch

from sitransport._io import check_load_path, check_map_location, read_checked
from sitransport._safefile import is_safe_file, read_tree
from sitransport.flow import TransportFlow
from sitransport.flow.latent import LatentFlow
from sitransport.interpolants import Interpolant, get_interpolant
from sitransport.protocols import Flow

__all__ = ["FLOW_KINDS", "load"]

#: The flow kinds a file can hold; :func:`load` picks the one whose ``FORMAT`` heads the file.
FLOW_KINDS: tuple[type[TransportFlow] | type[LatentFlow], ...] = (TransportFlow, LatentFlow)


def load(
    path: str | os.PathLike,
    *,
    base: Any = None,
    interpolant: str | Interpolant | None = None,
    map_location: str | torch.device = "cpu",
) -> Flow:
    """Load a flow written by ``save``, of any kind in :data:`FLOW_KINDS`. No code from the file
    is executed.

    The file holds no pickle: a safetensors file of the tensors, the rest as bounded JSON,
    and their SHA-256, which is verified. Files of earlier versions (torch records) load
    through a restricted reader that refuses compressed records, views that repeat or
    overrun their storage, shared or self-referential structures and more values than the
    file's size allows. Every stored part (shape, normalisation, network and interpolant
    descriptions, weights and every stored number) is checked against the others before
    anything is allocated from it, so loading never allocates more than the file holds
    plus the model it declares.

    Args:
        path: the file.
        base: ``rho0`` for flows saved with a torch Distribution base (not storable as data).
            Default ``None``.
        interpolant: for flows trained with a custom interpolant (not storable as data).
            Default ``None``.
        map_location: device for the network, e.g. ``"cpu"`` or ``"cuda:0"``.

    Returns:
        The :class:`~sitransport.TransportFlow` (or :class:`~sitransport.latent.LatentFlow`)
        that was saved.

    Raises:
        FileNotFoundError: no such file.
        OSError: the file cannot be opened (e.g. no permission to read it).
        TypeError: ``path``, ``map_location``, ``base`` or ``interpolant`` of a wrong type.
        ValueError: ``path`` is empty or a folder; ``map_location`` is not a device of this
            machine, or ``base`` or ``interpolant`` is invalid.
        CorruptFileError: (a :class:`ValueError`) the file is truncated or corrupted (its
            checksum does not match), holds objects other than tensors and plain data, is of
            another format or version, or its parts do not fit together. The message names
            the file.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import sitransport as st
        >>> x1 = st.datasets.sample("moons", 500, seed=0)
        >>> flow = st.fit("gaussian", x1, steps=20, progress=False, seed=0)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     flow.save(Path(tmp) / "moons.sit")
        ...     again = st.load(Path(tmp) / "moons.sit")
        >>> again.shape, again.config.training.steps, len(again.history.step)
        ((2,), 20, 20)
        >>> bool((again.sample(3, seed=0) == flow.sample(3, seed=0)).all())
        True
    """
    device = check_map_location(map_location)
    path = check_load_path(path)
    given = get_interpolant(interpolant) if interpolant is not None else None
    # file version 2: safetensors + JSON; before it, a torch record (read restricted)
    payload = read_tree(path) if is_safe_file(path) else read_checked(path, device)
    header = payload.get("format") if isinstance(payload, dict) else None
    # an unknown header: TransportFlow's check names the format it expected
    kind = next((k for k in FLOW_KINDS if k.FORMAT == header), TransportFlow)
    return kind.from_payload(
        payload, base=base, interpolant=given, map_location=device, source=path
    )


if TYPE_CHECKING:  # checked by the type checker only (`mypy sitransport` in CI); here, where
    # both kinds are imported anyway, so that protocols.py imports no flow module at all

    def _every_kind_is_a_flow(a: TransportFlow, b: LatentFlow) -> tuple[Flow, Flow]:
        return a, b  # an error here: a flow kind lost a member of Flow or changed its type
