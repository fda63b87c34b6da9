"""How :func:`~sitransport.fit` draws its training pairs ``(x0, x1)`` for the trainer:
independent draws of the two ends, a dataset's items in shuffled order
(:class:`DatasetDraw`), or the plans of a global optimal-transport coupling: the one
:class:`~sitransport.couplings.PairSource` of the run, built by the coupling itself."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sitransport.couplings import Coupling, End, PairSource
from sitransport.distributed import ShardedDataset
from sitransport.ends.densities import Density, EmpiricalDensity
from sitransport.flow import Normalization

# The other functions are fit's own steps, imported by the package, not public API.
__all__ = ["DatasetDraw"]


def pair_source(
    train0: Density, train1: Any, norm: Normalization, coupling: Coupling, seed: int
) -> PairSource:
    """The :class:`~sitransport.couplings.PairSource` of ``fit``'s normalised training
    pairs, built once by ``coupling``: independent draws of the two ends, or a dataset's
    items (stateful), paired per batch or drawn from a global plan between the two ends
    (sample sets as finite ends, other densities as streams).

    Args:
        train0: the training source end.
        train1: the training target end (a density or a dataset).
        norm: the normalisation applied to both ends.
        coupling: the coupling of the fit.
        seed: the run's seed (a global plan's subsamples).
    """
    if isinstance(train1, ShardedDataset):  # its position in the epoch is checkpointed too
        return coupling.source(DatasetDraw(train0, train1, norm), seed=seed)

    def draw(n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        return norm.encode(train0.sample(n, g)), norm.encode(train1.sample(n, g))

    def end(density: Density) -> End:
        if isinstance(density, EmpiricalDensity):
            return norm.encode(density.samples)
        return lambda m, g: norm.encode(density.sample(m, g))

    return coupling.source(draw, seed=seed, ends=lambda: (end(train0), end(train1)))


class DatasetDraw:
    """``draw(n, g)`` for :func:`~sitransport.train.train`: ``n`` base samples and the next
    ``n`` items of a :class:`~sitransport.distributed.ShardedDataset`, both normalised. It is
    stateful (the dataset's position), and its ``state_dict`` goes into checkpoints.

    Args:
        base: the source density ``rho0``; its samples have the images' shape.
        source: the target data set, read in shuffled order (this rank's shard).
        norm: the normalisation applied to both ends before they reach the trainer.

    Example:
        >>> import torch
        >>> from sitransport.ends.densities import StandardNormal
        >>> from sitransport.distributed import ShardedDataset
        >>> from sitransport.flow import Normalization
        >>> from sitransport.fitting import DatasetDraw
        >>> data = torch.utils.data.TensorDataset(torch.rand(8, 1, 2, 2))
        >>> draw = DatasetDraw(StandardNormal((1, 2, 2)), ShardedDataset(data, seed=0),
        ...                    Normalization.identity((1, 2, 2)))
        >>> [x.shape for x in draw(4, torch.Generator().manual_seed(0))]
        [torch.Size([4, 1, 2, 2]), torch.Size([4, 1, 2, 2])]
    """

    def __init__(self, base: Density, source: ShardedDataset, norm: Normalization) -> None:
        self.base, self.source, self.norm = base, source, norm

    def __call__(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.norm.encode(self.base.sample(n, g)), self.norm.encode(self.source(n, g))

    def state_dict(self) -> dict[str, int]:
        """The dataset's position (see :meth:`ShardedDataset.state_dict`).

        Example:
            >>> import torch
            >>> from sitransport.ends.densities import StandardNormal
            >>> from sitransport.distributed import ShardedDataset
            >>> from sitransport.flow import Normalization
            >>> data = torch.utils.data.TensorDataset(torch.rand(8, 2))
            >>> draw = DatasetDraw(StandardNormal((2,)), ShardedDataset(data, seed=0),
            ...                    Normalization.identity((2,)))
            >>> _ = draw(4, torch.Generator().manual_seed(0))
            >>> draw.state_dict()
            {'epoch': 0, 'position': 1}
        """
        return self.source.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position returned by :meth:`state_dict`.

        Args:
            state: ``{"epoch": ..., "position": ...}`` as :meth:`state_dict` returns it.

        Example:
            >>> import torch
            >>> from sitransport.ends.densities import StandardNormal
            >>> from sitransport.distributed import ShardedDataset
            >>> from sitransport.flow import Normalization
            >>> data = torch.utils.data.TensorDataset(torch.rand(8, 2))
            >>> draw = DatasetDraw(StandardNormal((2,)), ShardedDataset(data, seed=0),
            ...                    Normalization.identity((2,)))
            >>> draw.load_state_dict({"epoch": 1, "position": 0})
            >>> draw.state_dict()
            {'epoch': 1, 'position': 0}
        """
        self.source.load_state_dict(state)
