r"""Data-parallel training on ``torch.distributed``: process-group setup and sharded data.

Launch a script with ``torchrun --nproc_per_node=N script.py``; call :func:`setup` first
(NCCL on GPUs, gloo on CPUs). :func:`sitransport.train.train` (hence :func:`sitransport.fit`)
then sees an initialised process group and

- wraps the network in ``DistributedDataParallel`` (gradients averaged across ranks);
- draws each step's *global* batch identically on every rank (one seeded generator), pairs
  it with the coupling on the whole global batch — minibatch OT is never computed per GPU —
  and lets each rank train on its slice;
- with a torch ``Dataset`` (:class:`ShardedDataset`), reads each rank's shard through
  ``DistributedSampler`` and all-gathers it into the global batch before the coupling;
- writes checkpoints from rank 0 only.

A run on ``N`` ranks takes the same optimisation steps as one process on the same global
batch (tested with two gloo processes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from sitransport._validation import check_pixels, check_positive_int, check_seed

__all__ = [
    "ShardedDataset",
    "all_gather_batch",
    "cleanup",
    "is_main",
    "rank_and_world",
    "setup",
]


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one.

    Example:
        >>> rank_and_world()
        (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process is rank 0 (the one that writes files and prints).

    Example:
        >>> if is_main():  # True in a single process
        ...     print("rank 0 writes the results")
        rank 0 writes the results
    """
    return rank_and_world()[0] == 0


def setup(backend: str | None = None) -> torch.device:
    """Join the process group described by ``torchrun``'s environment and pick a device.

    Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) nothing is initialised and
    the device is ``cuda`` if available, else ``cpu``.

    Args:
        backend: ``"nccl"`` or ``"gloo"``; default NCCL when CUDA is available, else gloo.

    Returns:
        This rank's device (``cuda:LOCAL_RANK`` on GPUs).

    Raises:
        ValueError: unknown ``backend``.

    Example:
        The skeleton of a script run with ``torchrun --nproc_per_node=N script.py``; run
        alone (as here) it trains in one process:

        >>> device = setup()  # under torchrun: joins the process group
        >>> rank_and_world()
        (0, 1)
        >>> # ... sitransport.fit(..., device=device) ...
        >>> cleanup()
    """
    cuda = torch.cuda.is_available()
    if "WORLD_SIZE" not in os.environ:
        return torch.device("cuda" if cuda else "cpu")
    backend = backend or ("nccl" if cuda else "gloo")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'nccl' or 'gloo', got {backend!r}")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda and backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return device


def cleanup() -> None:
    """Leave the process group (if any).

    Example:
        >>> cleanup()  # safe without a process group
        >>> rank_and_world()
        (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_gather_batch(x: Tensor) -> Tensor:
    """Concatenate every rank's ``x`` (same shape on all ranks) in rank order, on ``x``'s
    device; ``x`` itself without a process group.

    Args:
        x: this rank's tensor; every rank passes the same shape and dtype.

    Example:
        >>> x = torch.zeros(8, 2)  # this rank's shard
        >>> all_gather_batch(x).shape  # (8 N, 2) on N ranks; one process here
        torch.Size([8, 2])
    """
    rank, world = rank_and_world()
    if world == 1:
        return x
    comm = x
    if dist.get_backend() == "nccl":
        comm = x.to(torch.device("cuda", torch.cuda.current_device()))
    parts = [torch.empty_like(comm) for _ in range(world)]
    dist.all_gather(parts, comm.contiguous())
    return torch.cat(parts).to(x.device)


def _first(item: Any) -> Tensor:
    """An image from a dataset item: the item itself or the first entry of a tuple."""
    if isinstance(item, (tuple, list)):
        item = item[0]
    return torch.as_tensor(item)


def _collate(items: Sequence[Any]) -> Tensor:
    return torch.stack([_first(item) for item in items])


class ShardedDataset:
    """Global batches from a torch ``Dataset``, each rank reading only its shard.

    Every epoch is a ``DistributedSampler`` permutation (seeded with ``seed`` and the epoch,
    ``drop_last=True``); a call returns the next global batch: each rank loads its
    ``n / world`` images (through a ``DataLoader`` with ``num_workers``) and the shards are
    all-gathered in rank order. Integer images (e.g. uint8 from
    ``torchvision.transforms.PILToTensor``) are dequantised on the global batch,
    ``(k + u) / levels`` with ``u`` from the caller's generator, so all ranks agree.
    The position (epoch, batch) is in :meth:`state_dict`, so checkpoints resume exactly.

    Args:
        dataset: map-style dataset of images ``(c, h, w)`` or ``(image, label)`` pairs.
        levels: grid levels of integer images. Default ``256``.
        seed: seed of the shuffling. Default ``0``.
        num_workers: ``DataLoader`` worker processes. Default ``0``.

    Example:
        >>> import torch
        >>> from sitransport.distributed import ShardedDataset
        >>> data = torch.randint(0, 256, (10, 1, 2, 2), dtype=torch.uint8)
        >>> source = ShardedDataset(torch.utils.data.TensorDataset(data), seed=0)
        >>> source(4, torch.Generator().manual_seed(0)).shape
        torch.Size([4, 1, 2, 2])
    """

    def __init__(
        self, dataset: Dataset, *, levels: int = 256, seed: int = 0, num_workers: int = 0
    ) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"dataset must be a map-style torch Dataset (with __getitem__ and __len__), got "
                f"{type(dataset).__name__}"
            )
        self.dataset = dataset
        self.levels = check_positive_int(levels, "levels", minimum=2)
        self.seed = check_seed(seed)
        self.num_workers = check_positive_int(num_workers, "num_workers", minimum=0)
        self.epoch, self.position = 0, 0
        self._batches: Any = None
        #: The dataset positions of the last global batch's items, in its order (a
        #: conditional fit reads their conditions).
        self.last_indices: Tensor | None = None
        self._local_indices = torch.zeros(0, dtype=torch.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-image shape, from the first item."""
        return tuple(_first(self.dataset[0]).shape)

    def images(self, indices: Sequence[int]) -> Tensor:
        """The images at ``indices`` of the dataset, stacked as stored (not dequantised);
        the image of an ``(image, label)`` item is its first entry.

        Args:
            indices: positions in the whole dataset (not this rank's shard), any order.

        Example:
            >>> data = torch.utils.data.TensorDataset(torch.arange(12).reshape(3, 1, 2, 2))
            >>> ShardedDataset(data).images([2, 0])[:, 0, 0, 0].tolist()
            [8, 0]
        """
        return _collate([self.dataset[i] for i in indices])

    def state_dict(self) -> dict[str, int]:
        """The position in the data: epoch and batches read in it.

        Example:
            >>> data = torch.utils.data.TensorDataset(torch.rand(10, 1, 2, 2))
            >>> source = ShardedDataset(data, seed=0)
            >>> _ = source(4, torch.Generator().manual_seed(0))
            >>> source.state_dict()
            {'epoch': 0, 'position': 1}
        """
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position returned by :meth:`state_dict` (checkpoint resume).

        Args:
            state: ``{"epoch": ..., "position": ...}`` as :meth:`state_dict` returns it.

        Example:
            >>> data = torch.utils.data.TensorDataset(torch.rand(10, 1, 2, 2))
            >>> source, g = ShardedDataset(data, seed=0), torch.Generator().manual_seed(0)
            >>> _ = source(4, g)
            >>> resumed = ShardedDataset(data, seed=0)
            >>> resumed.load_state_dict(source.state_dict())
            >>> torch.equal(resumed(4, g), source(4, g))  # the same next batch
            True
        """
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._batches = None

    def _local(self, m: int) -> Tensor:
        rank, world = rank_and_world()
        while self._batches is None:
            sampler: DistributedSampler[int] = DistributedSampler(
                self.dataset,
                num_replicas=world,
                rank=rank,
                shuffle=True,
                seed=self.seed,
                drop_last=True,
            )
            sampler.set_epoch(self.epoch)
            idx = list(sampler)
            per_epoch = len(idx) // m
            if per_epoch == 0:
                raise ValueError(
                    f"the dataset has {len(self.dataset)} items: too few for a batch of {m} "
                    f"per rank on {world} rank(s)"
                )
            if self.position >= per_epoch:
                self.epoch, self.position = self.epoch + 1, 0
                continue
            batches = [idx[i * m : (i + 1) * m] for i in range(self.position, per_epoch)]
            loader = DataLoader(
                self.dataset,
                batch_sampler=batches,
                num_workers=self.num_workers,
                collate_fn=_collate,
            )
            self._batches = (iter(loader), batches)
        it, left = self._batches
        out = next(it)
        self._local_indices = torch.tensor(left[0], dtype=torch.int64)
        self.position += 1
        self._batches = (it, left[1:]) if len(left) > 1 else None
        if self._batches is None:
            self.epoch, self.position = self.epoch + 1, 0
        return out

    def __call__(self, n: int, generator: torch.Generator) -> Tensor:
        """The next global batch of ``n`` images (float64; dequantised if integer)."""
        _, world = rank_and_world()
        if n % world:
            raise ValueError(f"the global batch {n} must be divisible by the world size {world}")
        x = all_gather_batch(self._local(n // world))
        self.last_indices = all_gather_batch(self._local_indices)
        if torch.is_floating_point(x):
            return x.to(torch.float64)
        check_pixels(x, "dataset images", self.levels)
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64)
        return (x.to(torch.float64) + u) / self.levels
