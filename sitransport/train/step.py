"""The data and gradients of one optimisation step: the training loss as a module
(:class:`Objective`, what ``DistributedDataParallel`` wraps), the global batch drawn and paired
(:class:`Batches`: times, noise, antithetic halves) and its gradients accumulated over this
rank's micro-batches (:class:`Gradients`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch
from torch import Tensor, nn

from sitransport.couplings import Coupling, DrawPairs, submit_within
from sitransport.ends.conditions import ConditionEncoder
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

    def __init__(
        self, net: nn.Module, interpolant: Interpolant, denoiser: bool, conditional: bool = False
    ) -> None:
        super().__init__()
        self.net = net
        self._interpolant = (interpolant,)
        self._denoiser = denoiser
        self._conditional = conditional

    def forward(self, *batch: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(loss, G, flow-matching loss, kinetic)`` of a batch ``(x0, x1, t[, z][, c])``
        (the condition codes ``c`` last, for a conditional network)."""
        interpolant = self._interpolant[0]
        dtype = batch[0].dtype
        codes = (batch[-1],) if self._conditional else ()
        batch = batch[:-1] if self._conditional else batch

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            # under autocast: the loss in full precision
            return self.net(x, t, *codes).to(dtype)

        out = quadratic_loss(velocity, interpolant, *batch)
        loss = out.quadratic
        if self._denoiser:

            def denoiser(x: Tensor, t: Tensor) -> Tensor:
                return cast(nn.Module, self.net.denoiser)(x, t, *codes).to(dtype)

            loss = loss + denoiser_loss(denoiser, interpolant, *batch)
        return loss, out.quadratic, out.flow_matching, out.kinetic


@dataclass(frozen=True)
class Conditions:
    """How a conditional run pairs and drops its conditions.

    Args:
        encoder: the conditions' encoder (its null code replaces dropped conditions).
        grouped: pair only within equal conditions (labels, or the feature values shared
            by both ends of ``condition=(c0, c1)``); otherwise continuous features, paired
            with the cost ``|x0 - x1|^2 + weight |c0 - c1|^2``.
        weight: that cost's condition weight (``None``: the coupling module's default).
        dropout: probability of replacing a pair's condition by the null one (guidance).
    """

    encoder: ConditionEncoder
    grouped: bool
    weight: float | None
    dropout: float


class Batches:
    """The batches of a run: calling it draws a global batch of ``n`` pairs from ``draw`` with
    the generator ``g``, its times (and noise), and starts its pairing by ``coupling``; a
    conditional run's draws carry condition codes, paired within conditions
    (:class:`Conditions`)."""

    def __init__(
        self,
        draw: DrawPairs,
        coupling: Coupling,
        time_sampler: TimeSampler,
        stochastic: bool,
        antithetic: bool,
        device: torch.device,
        dtype: torch.dtype,
        conditions: Conditions | None = None,
    ) -> None:
        self.draw, self.coupling, self.time_sampler = draw, coupling, time_sampler
        self.stochastic, self.antithetic = stochastic, antithetic
        self.device, self.dtype = device, dtype
        self.conditions = conditions

    def __call__(self, n: int, g: torch.Generator) -> Callable[[], tuple]:
        """Draw a batch and start its pairing; the returned function completes it.

        Stochastic interpolants get noise ``z``; with ``antithetic`` the batch is
        ``(x0, x1, t, z)`` followed by ``(x0, x1, t, -z)`` (the ``gamma' z . v`` term of the
        loss then cancels to first order), otherwise times come in pairs ``u, 1 - u``.
        Conditional batches end with the codes ``c``.
        """
        device, dtype, antithetic = self.device, self.dtype, self.antithetic
        drawn = self.draw(n, g)
        x0, x1 = (x.detach().to(device=device, dtype=dtype) for x in drawn[:2])
        codes = self._codes(drawn)
        if not self.stochastic:
            t = self.time_sampler.sample(
                n, generator=g, antithetic=antithetic, device=device, dtype=dtype
            )
            paired = self._submit(x0, x1, codes, g)

            def complete_pairs() -> tuple:
                a, b, *c = self._dropped(paired(), g)
                return a, b, t, *c

            return complete_pairs
        half = n // 2 if antithetic else n
        t = self.time_sampler.sample(half, generator=g, device=device, dtype=dtype)
        z = torch.randn((half, *x0.shape[1:]), generator=g, dtype=torch.float64).to(x0)
        paired = self._submit(x0[:half], x1[:half], None if codes is None else codes[:half], g)

        def complete() -> tuple:
            a, b, *c = self._dropped(paired(), g)
            if not antithetic:
                return a, b, t, z, *c
            twice = [torch.cat([x, x]) for x in (a, b, t, *c)]
            return twice[0], twice[1], twice[2], torch.cat([z, -z]), *twice[3:]

        return complete

    def _codes(self, drawn: tuple[Tensor, ...]) -> Tensor | None:
        """The drawn condition codes, on the run's device (features in its dtype)."""
        if self.conditions is None:
            return None
        if len(drawn) != 3:
            raise ValueError("a conditional run's draw must return (x0, x1, codes)")
        codes = drawn[2].detach().to(self.device)
        return codes.to(self.dtype) if codes.is_floating_point() else codes

    def _submit(
        self, x0: Tensor, x1: Tensor, codes: Tensor | None, g: torch.Generator
    ) -> Callable[[], tuple[Tensor, ...]]:
        """Start pairing a batch: by the coupling, within conditions for conditional runs."""
        conditions = self.conditions
        if conditions is None or codes is None:
            return self.coupling.submit(x0, x1, g)
        if not conditions.grouped:
            return submit_within(
                self.coupling, x0, x1, codes, g, labels=False, weight=conditions.weight
            )
        groups = conditions.encoder.groups(codes)
        finish = submit_within(self.coupling, x0, x1, groups, g, labels=True)

        def complete() -> tuple[Tensor, ...]:
            a, b, _ = finish()
            return a, b, codes  # pairs stay in their rows' groups: the same codes

        return complete

    def _dropped(self, pairs: tuple[Tensor, ...], g: torch.Generator) -> tuple[Tensor, ...]:
        """The paired batch with each condition replaced by the null one with probability
        ``dropout`` (drawn from ``g``)."""
        conditions = self.conditions
        if conditions is None or conditions.dropout == 0.0:
            return pairs
        a, b, codes = pairs
        drop = torch.rand(codes.shape[0], generator=g, dtype=torch.float64) < conditions.dropout
        null = conditions.encoder.null(codes.shape[0], dtype=self.dtype).to(codes)
        mask = drop.to(codes.device).reshape(-1, *[1] * (codes.ndim - 1))
        return a, b, torch.where(mask, null, codes)


class Gradients:
    """The backward pass of a step: calling it accumulates the gradients of a global batch
    through ``objective`` over this rank's ``accumulate`` micro-batches."""

    def __init__(
        self,
        objective: nn.Module | Callable[..., tuple[Tensor, Tensor, Tensor, Tensor]],
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
