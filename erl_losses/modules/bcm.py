"""The batch-correlation module (BCM) of ERL (paper sec. 3.2, fig. 3).

``f_e`` encodes each image, the features are pooled to ``grid x grid`` and flattened into one
token per SAMPLE, and ``t_e`` -- a transformer encoder whose sequence axis is the mini-batch --
lets every sample attend to the others. There is no positional encoding, so ``t_e`` is
permutation-equivariant over the batch. For the pretext task the relation features ``F'`` are
reshaped back, resized to the feature map, fused with ``F`` by a 1x1 convolution ``W`` and
decoded by ``f_d`` into a reconstruction ``I'`` (eq. 2).

Choices the paper leaves open: the width of ``f_e``/``f_d`` (a few 3x3 convolutions, one
stride-2 step), a linear projection between the flattened size ``C' = C * grid^2`` and the
transformer width ``d_model`` (the paper gives neither), pre-norm layers without dropout (so
the module is deterministic in train mode), and ``work_size``: the relation path may first
area-resize its input so that its cost stops growing with the patch size.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from erl_losses._validation import check_choice, check_image, check_int, check_positive_int

#: How ``t_e`` forms its attention scores. ``"layernorm"`` (the default): the pre-norm layer, q
#: and k from the LayerNorm output, scaled by ``1/sqrt(d)``. ``"cosine"``: q and k L2-normalised
#: with a learnable per-head temperature. ``"raw"``: q and k from the un-normalised tokens, so the
#: exposure (token norm) reaches the scores. The paper does not specify these details.
QK_MODES: tuple[str, ...] = ("layernorm", "cosine", "raw")


class BatchAttentionLayer(nn.Module):
    """A pre-norm transformer encoder layer over a ``(N, d_model)`` sequence of N samples."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, qk: str = "layernorm") -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(
                f"Expected `d_model` divisible by `num_heads`, got {d_model} and {num_heads}"
            )
        self.num_heads = num_heads
        self.qk = check_choice(qk, "qk", QK_MODES)
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Linear(ff_dim, d_model))
        if self.qk == "cosine":
            # Learnable per-head logit scale (log of a temperature), as in cosine attention
            # (Swin v2): init 10, so cosine differences of 0.1 already move 1 nat.
            self.log_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))

    def attention_weights(self, tokens: Tensor) -> Tensor:
        """Softmax attention of this layer, ``(num_heads, N, N)``; rows sum to 1."""
        q, k, _ = self._qkv(tokens)
        scale = 1.0 if self.qk == "cosine" else q.shape[-1] ** -0.5
        return (q @ k.transpose(-1, -2) * scale).softmax(dim=-1)

    def _qkv(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        normed = self.norm1(tokens)
        qkv = self.qkv(normed)
        if self.qk == "raw":
            # q and k read the un-normalised tokens, whose norm carries the exposure; v (and so
            # the values mixed) still read the LayerNorm output.
            d_model = tokens.shape[-1]
            weight, bias = self.qkv.weight[: 2 * d_model], self.qkv.bias[: 2 * d_model]
            qkv = torch.cat([F.linear(tokens, weight, bias), qkv[..., 2 * d_model :]], dim=-1)
        q, k, v = rearrange(qkv, "n (three h d) -> three h n d", three=3, h=self.num_heads)
        if self.qk == "cosine":
            q = F.normalize(q, dim=-1) * self.log_scale.exp()
            k = F.normalize(k, dim=-1)
        return q, k, v

    def forward(self, tokens: Tensor) -> Tensor:
        q, k, v = self._qkv(tokens)
        scale = 1.0 if self.qk == "cosine" else None
        mixed = F.scaled_dot_product_attention(q, k, v, scale=scale)
        tokens = tokens + self.proj(rearrange(mixed, "h n d -> n (h d)"))
        return tokens + self.ff(self.norm2(tokens))


class BatchTransformer(nn.Module):
    """``t_e``: projects ``(N, C')`` tokens to ``d_model``, relates them, projects back."""

    def __init__(
        self,
        token_dim: int,
        d_model: int,
        num_heads: int,
        num_layers: int,
        ff_dim: int,
        qk: str = "layernorm",
    ) -> None:
        super().__init__()
        self.in_proj = nn.Linear(token_dim, d_model)
        self.layers = nn.ModuleList(
            BatchAttentionLayer(d_model, num_heads, ff_dim, qk) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.out_proj = nn.Linear(d_model, token_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        hidden = self.in_proj(tokens)
        for layer in self.layers:
            hidden = layer(hidden)
        return self.out_proj(self.norm(hidden))

    def attention_weights(self, tokens: Tensor, layer: int = -1) -> Tensor:
        """Head-averaged ``(N, N)`` attention of one layer."""
        index = range(len(self.layers))[layer]
        hidden = self.in_proj(tokens)
        for i, block in enumerate(self.layers):
            if i == index:
                return block.attention_weights(hidden).mean(dim=0)
            hidden = block(hidden)
        raise AssertionError("unreachable: `layer` was range-checked")

    def attention_maps(self, tokens: Tensor) -> list[Tensor]:
        """Per-head attention of every layer: ``num_layers`` tensors ``(num_heads, N, N)``."""
        hidden = self.in_proj(tokens)
        maps = []
        for block in self.layers:
            maps.append(block.attention_weights(hidden))
            hidden = block(hidden)
        return maps


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


class BatchCorrelationModule(nn.Module):
    """ERL's batch-correlation module: relation features of a mini-batch of images.

    Args:
        in_channels: image channels.
        channels: width of the convolutional encoder ``f_e`` and decoder ``f_d``.
        feat_channels: channels ``C`` of the feature map ``F`` that is pooled into tokens.
        grid: ``F`` is pooled to ``grid x grid`` before flattening (paper: 16), so each token has
            ``C' = feat_channels * grid**2`` entries.
        d_model: width of the batch transformer ``t_e``.
        num_heads: attention heads of ``t_e``.
        num_layers: layers of ``t_e``.
        ff_mult: hidden width of the feed-forward blocks as a multiple of ``d_model``.
        work_size: the relation path (:meth:`forward`, :meth:`encode_tokens`) first area-resizes
            inputs larger than ``work_size`` on a side to at most ``work_size``, so its cost stops
            growing with the patch size; ``None`` runs at full resolution as the paper does.
            :meth:`reconstruct` always runs at full resolution.
        qk: how ``t_e`` scores the batch attention, one of :data:`QK_MODES` (``"layernorm"``:
            the default; ``"cosine"`` adds one learnable temperature per head). Saved in
            :attr:`config` only when not the default, so older files load unchanged.

    Shape:
        input ``(B, in_channels, H, W)`` with values in ``[0, 1]`` and ``H, W >= 8``;
        :meth:`forward` returns ``(B, C')``, one row per sample.

    Example:
        >>> bcm = BatchCorrelationModule()
        >>> x = torch.rand(4, 3, 40, 56)
        >>> bcm(x).shape
        torch.Size([4, 4096])
        >>> bcm.reconstruct(x).shape
        torch.Size([4, 3, 40, 56])
        >>> bcm.batch_attention(x).shape
        torch.Size([4, 4])
    """

    min_batch_size = 2
    min_size = 8

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = 32,
        feat_channels: int = 16,
        grid: int = 16,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_mult: int = 2,
        work_size: int | None = 128,
        qk: str = "layernorm",
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("channels", channels),
            ("feat_channels", feat_channels),
            ("grid", grid),
            ("d_model", d_model),
            ("num_heads", num_heads),
            ("num_layers", num_layers),
            ("ff_mult", ff_mult),
        ):
            check_positive_int(value, name)
        if work_size is not None:
            check_int(work_size, "work_size", minimum=self.min_size, hint=" or None")
        self._config: dict[str, Any] = {
            "in_channels": in_channels,
            "channels": channels,
            "feat_channels": feat_channels,
            "grid": grid,
            "d_model": d_model,
            "num_heads": num_heads,
            "num_layers": num_layers,
            "ff_mult": ff_mult,
            "work_size": work_size,
        }
        if qk != "layernorm":  # older files have no "qk" key: keep their config unchanged
            self._config["qk"] = check_choice(qk, "qk", QK_MODES)
        self.in_channels = in_channels
        self.grid = grid
        self.work_size = work_size
        self.token_dim = feat_channels * grid * grid
        act = nn.LeakyReLU(0.2)
        self.f_e = nn.Sequential(
            _conv(in_channels, channels), act,
            _conv(channels, channels, stride=2), act,
            _conv(channels, channels), act,
            _conv(channels, feat_channels),
        )  # fmt: skip
        self.t_e = BatchTransformer(
            self.token_dim, d_model, num_heads, num_layers, ff_mult * d_model, qk
        )
        self.fuse = nn.Conv2d(2 * feat_channels, feat_channels, 1)  # W of eq. 2
        self.f_d_head = nn.Sequential(_conv(feat_channels, channels), act)
        self.f_d_tail = nn.Sequential(
            _conv(channels, channels), act, _conv(channels, channels), act,
            _conv(channels, in_channels),
        )  # fmt: skip

    # -- construction ---------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments; ``BatchCorrelationModule(**bcm.config)`` rebuilds it."""
        return dict(self._config)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike[str] | None = None, **overrides: Any
    ) -> BatchCorrelationModule:
        """Loads a pretrained BCM (eval mode) from the zoo (``None``: the default) or a
        safetensors path, through :func:`erl_losses.modules.bcm_io.load_pretrained`.

        ``overrides`` replace config entries that do not change the weights' shapes, e.g.
        ``work_size``. Named weights are sha256-verified before use (see
        :mod:`erl_losses.zoo`); every file's config and weights are validated.
        """
        from erl_losses.modules.bcm_io import load_pretrained  # it imports this module

        return load_pretrained(name_or_path, **overrides).bcm

    def set_work_size(self, work_size: int | None) -> None:
        """Changes the relation path's working resolution (see the class docstring) in place;
        the weights keep their meaning, so this is the one config entry a loader may override."""
        if work_size is not None:
            check_int(work_size, "work_size", minimum=self.min_size, hint=" or None")
        self.work_size = work_size
        self._config["work_size"] = work_size

    def encoder_decoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of ``f_e``, ``W`` and ``f_d``: pretext stage 1 (auto-encoder)."""
        modules = (self.f_e, self.fuse, self.f_d_head, self.f_d_tail)
        return [p for m in modules for p in m.parameters()]

    def relation_parameters(self) -> list[nn.Parameter]:
        """Parameters of ``t_e`` and ``W``: pretext stage 2 (``f_e``, ``f_d`` frozen)."""
        return [*self.t_e.parameters(), *self.fuse.parameters()]

    def pretext_parameters(
        self, stage: int, *, fuse_relation_only: bool = True
    ) -> list[nn.Parameter]:
        """Makes only what pretext ``stage`` trains require grad, and returns those parameters.

        Stage 1 (auto-encoder): ``f_e``, ``W`` and ``f_d``. Stage 2: ``t_e`` and ``W``; with
        ``fuse_relation_only`` only the half of ``W`` that reads ``F'`` learns (its bias is
        left out here, its ``F``-reading half is masked by :meth:`mask_pretext_grad`), so
        ``reconstruct(x, relation=False)`` stays exactly the stage-1 auto-encoder.
        """
        if stage not in (1, 2):
            raise ValueError(f"Expected `stage` to be 1 or 2, got {stage!r}")
        self.requires_grad_(False)
        params = self.encoder_decoder_parameters() if stage == 1 else self.relation_parameters()
        if stage == 2 and fuse_relation_only and self.fuse.bias is not None:
            params = [p for p in params if p is not self.fuse.bias]
        for param in params:
            param.requires_grad_(True)
        return params

    def mask_pretext_grad(self, stage: int, *, fuse_relation_only: bool = True) -> None:
        """After ``backward()``: zeroes the gradient of ``W``'s ``F``-reading half in stage 2.

        Adam without weight decay turns an always-zero gradient into an exactly zero update, so
        those weights keep their stage-1 values bit for bit.
        """
        if stage == 2 and fuse_relation_only and self.fuse.weight.grad is not None:
            feat = self.fuse.weight.shape[1] // 2  # W reads cat([F, F']): the first half is F
            self.fuse.weight.grad[:, :feat] = 0

    # -- the relation path ----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the weights are (all of them: a BCM is moved as a whole)."""
        return self.fuse.weight.device

    def check_input(self, x: Tensor, name: str = "x") -> Tensor:
        """Checks images for this BCM (shape, channels, size, device) and casts them to its
        weights' dtype; every entry point calls it, ``name`` is the argument named in errors."""
        check_image(x, name, channels=self.in_channels, min_size=self.min_size)
        weight = self.fuse.weight
        if x.device != weight.device:
            raise ValueError(
                f"Expected `{name}` on the BCM's device {weight.device}, got {x.device} "
                "(move the module or loss with `.to(device)`)"
            )
        return x.to(weight.dtype)

    def _work_resize(self, x: Tensor) -> Tensor:
        if self.work_size is None:
            return x
        height, width = x.shape[-2:]
        size = (min(height, self.work_size), min(width, self.work_size))
        if size == (height, width):
            return x
        return F.interpolate(x, size=size, mode="area")

    def _tokens_from_features(self, feats: Tensor) -> Tensor:
        pooled = F.adaptive_avg_pool2d(feats, self.grid)
        return rearrange(pooled, "b c h w -> b (c h w)")

    def encode_tokens(self, x: Tensor) -> Tensor:
        """Per-sample tokens before any cross-sample mixing: ``f_e``, pool, flatten.

        Args:
            x: images ``(B, in_channels, H, W)`` in ``[0, 1]``.

        Returns:
            ``(B, C')`` tokens; row ``i`` depends on sample ``i`` only.
        """
        x = self.check_input(x)
        return self._tokens_from_features(self.f_e(self._work_resize(x)))

    def relate(self, tokens: Tensor) -> Tensor:
        """Runs ``t_e`` over the batch axis of ``(N, C')`` tokens; returns ``(N, C')``."""
        if tokens.ndim != 2 or tokens.shape[1] != self.token_dim:
            raise ValueError(
                f"Expected `tokens` of shape (N, {self.token_dim}), got {tuple(tokens.shape)}"
            )
        return self.t_e(tokens)

    def forward(self, x: Tensor) -> Tensor:
        """Relation features ``F' = t_e(f_e(x))`` (eq. 1), ``(B, C')``: row ``i`` depends on
        every sample of the batch."""
        return self.relate(self.encode_tokens(x))

    def batch_attention(self, x: Tensor, layer: int = -1) -> Tensor:
        """The ``(B, B)`` head-averaged attention of ``t_e``'s ``layer``; row ``i`` is how much
        sample ``i`` attends to each sample of the batch (rows sum to 1)."""
        if not -len(self.t_e.layers) <= layer < len(self.t_e.layers):
            raise ValueError(
                f"Expected `layer` in [{-len(self.t_e.layers)}, {len(self.t_e.layers) - 1}], "
                f"got {layer}"
            )
        return self.t_e.attention_weights(self.encode_tokens(x), layer)

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """Per-head batch attention of every layer of ``t_e``: ``num_layers`` tensors
        ``(num_heads, B, B)`` (rows sum to 1)."""
        return self.t_e.attention_maps(self.encode_tokens(x))

    # -- the pretext path -----------------------------------------------------------------------
    def reconstruct(self, x: Tensor, relation: bool = True) -> Tensor:
        """``I' = f_d(W(cat[F, F']))`` (eq. 2) at full resolution, with ``x``'s shape.

        Args:
            x: images ``(B, in_channels, H, W)`` in ``[0, 1]``.
            relation: if ``False``, ``F'`` is replaced by zeros: the plain auto-encoder of
                pretext stage 1.
        """
        x = self.check_input(x)
        feats = self.f_e(x)
        if relation:
            related = self.t_e(self._tokens_from_features(feats))
            related = rearrange(related, "b (c h w) -> b c h w", h=self.grid, w=self.grid)
            related = F.interpolate(
                related, size=feats.shape[-2:], mode="bilinear", align_corners=False
            )
        else:
            related = torch.zeros_like(feats)
        hidden = self.f_d_head(self.fuse(torch.cat([feats, related], dim=1)))
        hidden = F.interpolate(hidden, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.f_d_tail(hidden)
