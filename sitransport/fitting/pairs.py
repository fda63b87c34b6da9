"""How :func:`~sitransport.fit` draws its training pairs ``(x0, x1)`` for the trainer:
independent draws of the two ends, a dataset's items in shuffled order
(:class:`DatasetDraw`), or the plans of a global optimal-transport coupling."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sitransport._bases import Density, EmpiricalDensity
from sitransport.couplings import Coupling, GlobalOT, PlanSampler
from sitransport.distributed import ShardedDataset
from sitransport.flow import Normalization

__all__ = ["DatasetDraw", "pair_draw"]


def pair_draw(
    train0: Density, train1: Any, norm: Normalization, coupling: Coupling, seed: int
) -> Any:
    """``draw(n, generator)`` of normalised training pairs for
    :func:`~sitransport.train.train`: independent draws, a dataset's items (stateful), or the
    plans of a :class:`GlobalOT` coupling.

    Args:
        train0: the training source end.
        train1: the training target end (a density or a dataset).
        norm: the normalisation applied to both ends.
        coupling: the coupling of the fit (a :class:`GlobalOT` draws from its plans).
        seed: the run's seed (the plans' subsamples).
    """
    if isinstance(coupling, GlobalOT):  # batches from OT plans of the training sets
        return _plan_sampler(coupling, train0, train1, norm, seed)
    if isinstance(train1, ShardedDataset):  # its position in the epoch is checkpointed too
        return DatasetDraw(train0, train1, norm)

    def draw(n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        return norm.encode(train0.sample(n, g)), norm.encode(train1.sample(n, g))

    return draw


def _plan_sampler(
    coupling: GlobalOT, train0: Density, train1: Any, norm: Normalization, seed: int
) -> PlanSampler:
    """The :class:`PlanSampler` of ``fit``'s training ends in normalised coordinates: sample
    sets as finite ends, other densities as streams."""
    if isinstance(train1, ShardedDataset):
        raise ValueError(
            "coupling='global_ot' needs rho1 as samples, ImageData or a distribution, not a "
            "torch Dataset; use coupling='exact_ot' for datasets"
        )

    def end(density: Density) -> Any:
        if isinstance(density, EmpiricalDensity):
            return norm.encode(density.samples)
        return lambda m, g: norm.encode(density.sample(m, g))

    return coupling.sampler(end(train0), end(train1), seed=seed + 4)


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
        >>> from sitransport._bases import StandardNormal
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
            >>> from sitransport._bases import StandardNormal
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
            >>> from sitransport._bases import StandardNormal
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
