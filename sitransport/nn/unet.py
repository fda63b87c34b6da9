r"""U-Net velocity field for images ``(n, c, h, w)``, in the style of DDPM (Ho et al. 2020).

Residual blocks with GroupNorm and a time-embedding shift, self-attention at chosen
resolutions, channel multipliers per resolution level, dropout, and a zero-initialised output
convolution (the untrained field is ``v = 0``). The time embedding is
:class:`~sitransport.nn.mlp.TimeEmbedding` (integer sinusoidal frequencies on ``[0, 1]``)
followed by a two-layer MLP. A conditional U-Net adds the embedding of its condition
(:class:`~sitransport.nn.condition.ConditionEmbedding`) to the time embedding, as the
class-conditional U-Nets of Dhariwal & Nichol do.

Named presets (:data:`UNET_PRESETS`) go from ``"tiny"`` (tests on a CPU, under 100k
parameters) to ``"cifar10"``, the paper's CIFAR-10 size with 256 base channels.

References:
    Ho, Jain & Abbeel, Denoising Diffusion Probabilistic Models, arXiv:2006.11239;
    Albergo & Vanden-Eijnden, arXiv:2209.15571 (Sec. 4, image experiments);
    Dhariwal & Nichol, Diffusion Models Beat GANs on Image Synthesis, arXiv:2105.05233.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sitransport._validation import check_choice, check_fraction, check_positive_int
from sitransport.nn.condition import ConditionEmbedding, check_condition_config
from sitransport.nn.mlp import TimeEmbedding

__all__ = [
    "UNET_PRESETS",
    "UNetVelocity",
    "unet_config",
]

#: Architecture presets (everything but the data's ``channels`` and ``image_size``).
UNET_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {  # tests and CPU runs on 8x8 to 32x32 images
        "base_channels": 16,
        "channel_mult": [1, 1],
        "num_res_blocks": 1,
        "attention_resolutions": [4],
        "dropout": 0.0,
        "norm_groups": 8,
        "heads": 1,
    },
    "small": {  # quick GPU runs on 32x32 images
        "base_channels": 64,
        "channel_mult": [1, 2, 2],
        "num_res_blocks": 2,
        "attention_resolutions": [16],
        "dropout": 0.1,
        "norm_groups": 32,
        "heads": 1,
    },
    "cifar10": {  # the paper's CIFAR-10 size: 256 base channels
        "base_channels": 256,
        "channel_mult": [1, 2, 2, 2],
        "num_res_blocks": 2,
        "attention_resolutions": [16],
        "dropout": 0.1,
        "norm_groups": 32,
        "heads": 4,
    },
    "imagenet32": {
        "base_channels": 256,
        "channel_mult": [1, 2, 2, 2],
        "num_res_blocks": 3,
        "attention_resolutions": [16, 8],
        "dropout": 0.0,
        "norm_groups": 32,
        "heads": 4,
    },
    "flowers128": {
        "base_channels": 128,
        "channel_mult": [1, 1, 2, 3, 4],
        "num_res_blocks": 2,
        "attention_resolutions": [16],
        "dropout": 0.1,
        "norm_groups": 32,
        "heads": 4,
    },
}


def unet_config(
    preset: str, channels: int, image_size: int | Sequence[int], **overrides: Any
) -> dict[str, Any]:
    """Arguments of :class:`UNetVelocity` for a named preset and images ``channels x image_size``.

    Args:
        preset: a key of :data:`UNET_PRESETS`.
        channels: image channels ``c``.
        image_size: ``h`` (square) or ``(h, w)``.
        **overrides: any :class:`UNetVelocity` argument, e.g. ``dropout=0.0``.

    Example:
        >>> cfg = unet_config("tiny", 1, 8)
        >>> cfg["base_channels"], cfg["image_size"]
        (16, [8, 8])
    """
    check_choice(preset, "U-Net preset", UNET_PRESETS)
    unknown = set(overrides) - set(UNET_PRESETS["tiny"]) - {"time_frequencies"}
    if unknown:
        raise ValueError(
            f"unknown U-Net arguments {sorted(unknown)}; valid are: "
            f"{', '.join(sorted([*UNET_PRESETS['tiny'], 'time_frequencies']))}"
        )
    size = [int(image_size)] * 2 if isinstance(image_size, int) else list(image_size)
    return {
        "channels": channels,
        "image_size": size,
        **dict(UNET_PRESETS[preset], **overrides),
    }


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, plus the time embedding, GroupNorm-SiLU-dropout-conv, skip."""

    def __init__(self, c_in: int, c_out: int, emb: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        _zero(self.conv2)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class _Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, residual."""

    def __init__(self, c: int, heads: int, groups: int) -> None:
        super().__init__()
        if c % heads:
            raise ValueError(f"heads must divide the channels at every level, got {heads} for {c}")
        self.heads = heads
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        _zero(self.proj)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.mT)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class _Level(nn.Module):
    """The blocks of one resolution level (residual block, then attention if any)."""

    def __init__(self, blocks: list[_ResBlock], attention: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attention = nn.ModuleList(attention)


class UNetVelocity(nn.Module):
    """Velocity field ``v(x, t)`` for images ``x`` of shape ``(n, c, h, w)``: a DDPM U-Net.

    Args:
        channels: image channels ``c``.
        image_size: ``h`` (square) or ``(h, w)``; each must be divisible by
            ``2 ** (len(channel_mult) - 1)``.
        base_channels: feature channels at full resolution. Default ``64``.
        channel_mult: channel multiplier of each resolution level (one halving per level).
            Default ``(1, 2, 2)``.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
            Default ``2``.
        attention_resolutions: feature-map heights at which self-attention is applied.
            Default ``(16,)``.
        dropout: dropout rate inside the residual blocks. Default ``0.1``.
        norm_groups: GroupNorm groups (must divide every level's channels). Default ``32``.
        heads: attention heads. Default ``1``.
        time_frequencies: sinusoidal frequencies of the time embedding. Default ``32``.
        condition: the condition input of a conditional network, ``{"kind", "size"}`` (see
            :mod:`sitransport.nn.condition`; no ``"fusion"``: the condition's embedding is
            added to the time embedding). It starts at zero, so a fresh conditional U-Net is
            the unconditional one of the same seed. ``None`` (default): none.

    Example:
        >>> import torch
        >>> from sitransport.nn import UNetVelocity, unet_config
        >>> net = UNetVelocity(**unet_config("tiny", 1, 8))
        >>> net(torch.zeros(2, 1, 8, 8), torch.tensor(0.5)).shape
        torch.Size([2, 1, 8, 8])
        >>> labels = {"kind": "labels", "size": 3}  # two labels and the null one
        >>> labelled = UNetVelocity(**unet_config("tiny", 1, 8), condition=labels)
        >>> labelled(torch.zeros(2, 1, 8, 8), torch.tensor(0.5), torch.tensor([0, 2])).shape
        torch.Size([2, 1, 8, 8])
    """

    condition_embedding: ConditionEmbedding | None

    def __init__(
        self,
        channels: int,
        image_size: int | Sequence[int],
        base_channels: int = 64,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (16,),
        dropout: float = 0.1,
        norm_groups: int = 32,
        heads: int = 1,
        time_frequencies: int = 32,
        condition: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_positive_int(channels, "channels")
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2:
            raise ValueError(f"image_size must be an int or (h, w), got {image_size!r}")
        for s in size:
            check_positive_int(s, "image_size")
        check_positive_int(base_channels, "base_channels")
        mult = [check_positive_int(m, "channel_mult") for m in channel_mult]
        if not mult:
            raise ValueError("channel_mult must name at least one level, got []")
        check_positive_int(num_res_blocks, "num_res_blocks")
        check_fraction(dropout, "dropout")
        check_positive_int(norm_groups, "norm_groups")
        check_positive_int(heads, "heads")
        factor = 2 ** (len(mult) - 1)
        if size[0] % factor or size[1] % factor:
            raise ValueError(
                f"image_size {size} must be divisible by 2**(len(channel_mult) - 1) = {factor}"
            )
        widths = [base_channels * m for m in mult]
        bad = [c for c in widths if c % norm_groups]
        if bad:
            raise ValueError(
                f"norm_groups={norm_groups} must divide the channels of every level, got {widths}"
            )
        attn = {int(r) for r in attention_resolutions}
        cond = None if condition is None else check_condition_config(condition, fusion=False)
        self.config: dict[str, Any] = {
            "kind": "unet",
            "channels": channels,
            "image_size": list(size),
            "base_channels": base_channels,
            "channel_mult": mult,
            "num_res_blocks": num_res_blocks,
            "attention_resolutions": sorted(attn),
            "dropout": float(dropout),
            "norm_groups": norm_groups,
            "heads": heads,
            "time_frequencies": time_frequencies,
        }
        self.shape = (channels, *size)
        emb = 4 * base_channels
        self.time_embedding = TimeEmbedding(time_frequencies)
        self.time_mlp = nn.Sequential(
            nn.Linear(self.time_embedding.dim, emb), nn.SiLU(), nn.Linear(emb, emb)
        )
        self.conv_in = nn.Conv2d(channels, base_channels, 3, padding=1)

        def attention(c: int, height: int) -> list[nn.Module]:
            return [_Attention(c, heads, norm_groups)] if height in attn else []

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, c, height = [base_channels], base_channels, size[0]
        for i, width in enumerate(widths):
            for _ in range(num_res_blocks):
                block = _ResBlock(c, width, emb, dropout, norm_groups)
                self.down.append(_Level([block], attention(width, height)))
                c = width
                skips.append(c)
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
                height //= 2
        self.mid = _Level(
            [
                _ResBlock(c, c, emb, dropout, norm_groups),
                _ResBlock(c, c, emb, dropout, norm_groups),
            ],
            [_Attention(c, heads, norm_groups)],
        )
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, width in reversed(list(enumerate(widths))):
            for _ in range(num_res_blocks + 1):
                block = _ResBlock(c + skips.pop(), width, emb, dropout, norm_groups)
                self.up.append(_Level([block], attention(width, height)))
                c = width
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
                height *= 2
        self.norm_out = nn.GroupNorm(norm_groups, c)
        self.conv_out = nn.Conv2d(c, channels, 3, padding=1)
        _zero(self.conv_out)
        self._levels = len(widths)
        self._blocks = num_res_blocks
        self.condition_embedding = None  # built last: the modules above keep their weights
        if cond is not None:
            self.config["condition"] = cond
            self.condition_embedding = _zero_embedding(cond, emb)

    def forward(self, x: Tensor, t: Tensor, c: Tensor | None = None) -> Tensor:
        """Return ``v(x, t)`` (``v(x, t, c)`` for a conditional network) of shape
        ``(n, c, h, w)``; ``t`` is a scalar or of shape ``(n,)``.

        Args:
            x: images, shape ``(n, c, h, w)`` with this network's ``c, h, w``.
            t: times, a scalar (shared by all samples) or a tensor of shape ``(n,)``, in ``[0, 1]``.
            c: condition codes of a conditional network: ``(n,)`` int64 labels or
                ``(n, k + 1)`` float features (see :mod:`sitransport.ends.conditions`);
                ``None`` for an unconditional one.

        Raises:
            ValueError: ``x`` is not of shape ``(n, c, h, w)`` with this network's ``c, h, w``;
                a conditional network without ``c`` or an unconditional one with it
                (the message starts with ``condition:``); codes of the wrong kind or width.

        Example:
            >>> net = UNetVelocity(**unet_config("tiny", 3, 8))
            >>> x = torch.zeros(2, 3, 8, 8)
            >>> net(x, torch.tensor([0.25, 0.75])).shape
            torch.Size([2, 3, 8, 8])
            >>> with torch.no_grad():
            ...     float(net(x, torch.tensor(0.5)).abs().max())  # the output layer starts at 0
            0.0
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"x must have shape (n, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}"
            )
        emb = self._embedding(x, t, c)
        h = self.conv_in(x)
        skips = [h]
        down = cast("Iterator[_Level]", iter(self.down))
        for i in range(self._levels):
            for _ in range(self._blocks):
                h = _run(next(down), h, emb)
                skips.append(h)
            if i < self._levels - 1:
                h = self.downsample[i](h)
                skips.append(h)
        h = self.mid.blocks[0](h, emb)
        h = self.mid.attention[0](h)
        h = self.mid.blocks[1](h, emb)
        up = cast("Iterator[_Level]", iter(self.up))
        for i in range(self._levels):
            for _ in range(self._blocks + 1):
                h = _run(next(up), torch.cat([h, skips.pop()], dim=1), emb)
            if i < self._levels - 1:
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))

    def _embedding(self, x: Tensor, t: Tensor, c: Tensor | None) -> Tensor:
        """The embedding of ``t`` plus, for a conditional network, that of ``c``."""
        if (self.condition_embedding is None) != (c is None):
            has = "is conditional: pass its condition" if c is None else "takes no condition"
            raise ValueError(f"condition: this network {has}")
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(self.time_embedding(t.to(x.dtype)))
        if self.condition_embedding is None or c is None:
            return emb
        return emb + self.condition_embedding(c, x.dtype)


def _zero(conv: nn.Conv2d) -> None:
    """Start a convolution at zero (weight and bias): its block starts as the identity."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _zero_embedding(condition: dict[str, Any], width: int) -> ConditionEmbedding:
    """A condition embedding whose output starts at zero (the label table, or the last
    layer of the features' MLP): added to the time embedding, it leaves a fresh network the
    unconditional one, and the gradient moves each label's row (or the last layer) first."""
    embedding = ConditionEmbedding(condition["kind"], condition["size"], width)
    table = embedding.table
    last = table if isinstance(table, nn.Embedding) else cast(nn.Sequential, table)[-1]
    with torch.no_grad():
        for p in last.parameters():
            p.zero_()
    return embedding


def _run(level: _Level, h: Tensor, emb: Tensor) -> Tensor:
    for block in level.blocks:
        h = block(h, emb)
    for attention in level.attention:
        h = attention(h)
    return h
