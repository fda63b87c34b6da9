"""The data and gradients of one optimisation step: the training loss as a module
(:class:`Objective`, what ``DistributedDataParallel`` wraps), the global batch drawn and paired
(:class:`Batches`: times, noise, antithetic halves) and its gradients accumulated over this
rank's micro-batches (:class:`Gradients`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch
from torch import Tensor, nn

from sitransport.couplings import Coupling, DrawPairs
from sitransport.interpolants import Interpolant
from sitransport.losses import TimeSampler, denoiser_loss, quadratic_loss
from sitransport.paths import PathOptimizer

if TYPE_CHECKING:
    from torch.nn.parallel import DistributedDataParallel

__all__: list[str] = []


class StatefulDraw(Protocol):
    """A draw with a position to checkpoint (a dataset's: see ``fit``), besides ``__call__``."""

    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Objective(nn.Module):
    """The training loss as a module, so ``DistributedDataParallel`` can wrap it whole
    (the denoiser of a stochastic interpolant is trained in the same forward pass). The
    interpolant is held outside the module tree: its parameters are not the network's."""

    def __init__(self, net: nn.Module, interpolant: Interpolant, denoiser: bool) -> None:
        super().__init__()
        self.net = net
        self._interpolant = (interpolant,)
        self._denoiser = denoiser

    def forward(self, *batch: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(loss, G, flow-matching loss, kinetic)`` of a batch ``(x0, x1, t[, z])``."""
        interpolant = self._interpolant[0]
        dtype = batch[0].dtype

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            return self.net(x, t).to(dtype)  # under autocast: the loss in full precision

        out = quadratic_loss(velocity, interpolant, *batch)
        loss = out.quadratic
        if self._denoiser:

            def denoiser(x: Tensor, t: Tensor) -> Tensor:
                return cast(nn.Module, self.net.denoiser)(x, t).to(dtype)

            loss = loss + denoiser_loss(denoiser, interpolant, *batch)
        return loss, out.quadratic, out.flow_matching, out.kinetic


class Batches:
    """The batches of a run: calling it draws a global batch of ``n`` pairs from ``draw`` with
    the generator ``g``, its times (and noise), and starts its pairing by ``coupling``."""

    def __init__(
        self,
        draw: DrawPairs,
        coupling: Coupling,
        time_sampler: TimeSampler,
        stochastic: bool,
        antithetic: bool,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.draw, self.coupling, self.time_sampler = draw, coupling, time_sampler
        self.stochastic, self.antithetic = stochastic, antithetic
        self.device, self.dtype = device, dtype

    def __call__(self, n: int, g: torch.Generator) -> Callable[[], tuple]:
        """Draw a batch and start its pairing; the returned function completes it.

        Stochastic interpolants get noise ``z``; with ``antithetic`` the batch is
        ``(x0, x1, t, z)`` followed by ``(x0, x1, t, -z)`` (the ``gamma' z . v`` term of the
        loss then cancels to first order), otherwise times come in pairs ``u, 1 - u``.
        """
        device, dtype, antithetic = self.device, self.dtype, self.antithetic
        x0, x1 = (x.detach().to(device=device, dtype=dtype) for x in self.draw(n, g))
        if not self.stochastic:
            t = self.time_sampler.sample(
                n, generator=g, antithetic=antithetic, device=device, dtype=dtype
            )
            paired = self.coupling.submit(x0, x1, g)
            return lambda: (*paired(), t)
        half = n // 2 if antithetic else n
        t = self.time_sampler.sample(half, generator=g, device=device, dtype=dtype)
        z = torch.randn((half, *x0.shape[1:]), generator=g, dtype=torch.float64).to(x0)
        paired = self.coupling.submit(x0[:half], x1[:half], g)

        def complete() -> tuple:
            a, b = paired()
            if not antithetic:
                return a, b, t, z
            return torch.cat([a, a]), torch.cat([b, b]), torch.cat([t, t]), torch.cat([z, -z])

        return complete


class Gradients:
    """The backward pass of a step: calling it accumulates the gradients of a global batch
    through ``objective`` over this rank's ``accumulate`` micro-batches."""

    def __init__(
        self,
        objective: nn.Module,
        autocast: torch.autocast,
        path_opt: PathOptimizer | None,
        accumulate: int,
        rank: int,
        world: int,
        device: torch.device,
    ) -> None:
        self.objective, self.autocast, self.path_opt = objective, autocast, path_opt
        self.accumulate, self.rank, self.world, self.device = accumulate, rank, world, device

    def _micro_batches(self, current: tuple) -> list[tuple]:
        """This rank's slice of the global batch, cut into ``accumulate`` micro-batches."""
        rank, world = self.rank, self.world
        m = current[0].shape[0] // world
        mine = tuple(c[rank * m : (rank + 1) * m] for c in current)
        chunks = (torch.chunk(c, self.accumulate) for c in mine)
        return list(zip(*chunks, strict=True))

    def __call__(
        self, current: tuple, simultaneous: bool
    ) -> tuple[tuple[float, float, float], tuple[Tensor, ...] | None]:
        """Accumulate the gradients of a global batch over this rank's micro-batches (only
        the last one synchronises ranks); ``((loss, fm_loss, kinetic), ascent)``, averaged over
        micro-batches and ranks, with the path's ascent direction when ``simultaneous``."""
        k, world = self.accumulate, self.world
        stats = torch.zeros(3, dtype=torch.float64, device=self.device)
        ascent = None
        path_opt = self.path_opt if simultaneous else None
        for j, part in enumerate(self._micro_batches(current)):
            sync = world == 1 or j == k - 1
            # not synchronising: several ranks, so the objective is a DistributedDataParallel
            ddp = cast("DistributedDataParallel", self.objective)
            with contextlib.nullcontext() if sync else ddp.no_sync():
                with self.autocast:
                    loss, quadratic, fm, kinetic = self.objective(*part)
                if path_opt is not None:  # max–min: the path's ascent from this evaluation
                    params = path_opt.params
                    ascent = torch.autograd.grad(quadratic, params, retain_graph=True)
                (loss / k if k > 1 else loss).backward()
            stats += torch.stack([loss.detach(), fm.detach(), kinetic.detach()]).double() / k
        if world > 1:
            torch.distributed.all_reduce(stats)
            stats /= world
        loss_value, fm_value, kinetic_value = (float(s) for s in stats)
        return (loss_value, fm_value, kinetic_value), ascent
