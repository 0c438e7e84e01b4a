"""Vision Transformer, laid out like torchvision's and timm's, so CAMs and attention rollout can reach inside.

A. Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
ICLR 2021 (ViT); H. Touvron et al., "Training data-efficient image transformers & distillation through
attention", ICML 2021 (DeiT; the DeiT-Small sizes). Pre-norm blocks, a class token, learned absolute
position embeddings, the head on the class token.

Names follow timm: ``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks[i].{norm1, attn, norm2,
mlp}``, ``norm``, ``head``. Self-attention is written out (no fused kernel) so the softmax probabilities
[B, heads, T, T] pass through ``blocks[i].attn.attn_probs`` (an ``nn.Identity``): a forward hook there
sees them and can take their gradient (part/explain/attention.py).

Image size: the registry builder gets (num_classes, in_channels) only, so the position embedding is built
for the record's ``input_size`` (a grid of input_size / patch per side). An input of another size, each
side a multiple of the patch, is accepted: the patch part of the position embedding is resized on the fly
by bicubic interpolation to that grid (the class token's entry is kept), as timm's ``dynamic_img_size``
does; the stored parameter never changes. ``tokens_to_map`` turns block outputs into CAM feature maps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ModelSpec, register

# ImageNet statistics, as timm's ViT/DeiT records use them (collapsed to their mean for grey input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tokens_to_map(tokens: torch.Tensor) -> torch.Tensor:
    """Block output [B, T, C] -> feature map [B, C, h, w]: the class token dropped, the patches on their grid.

    The grid is taken to be square (h = w = sqrt(T - 1)), as for square inputs.
    """
    if tokens.dim() != 3:
        raise ValueError(f"tokens must be shaped [B, T, C]; got {tuple(tokens.shape)}")
    n = tokens.shape[1] - 1
    side = math.isqrt(max(n, 0))
    if n < 1 or side * side != n:
        raise ValueError(f"{n} patch tokens do not form a square grid; CAMs on a ViT need a square input")
    return tokens[:, 1:].reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)


class PatchEmbed(nn.Module):
    """Non-overlapping patch x patch convolution: [B, C, H, W] -> tokens [B, (H/p)*(W/p), dim]."""

    def __init__(self, in_channels: int, dim: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.patch or w % self.patch:
            raise ValueError(f"input is {h}x{w}; each side must be a multiple of the patch size {self.patch}")
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with the softmax probabilities routed through ``attn_probs``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.num_heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_probs = nn.Identity()  # hook here: [B, heads, T, T], rows sum to 1
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        probs = self.attn_probs((q * self.scale @ k.transpose(-2, -1)).softmax(dim=-1))
        return self.proj((probs @ v).transpose(1, 2).reshape(b, t, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT classifier on the class token; accepts any input whose sides are multiples of ``patch``."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        *,
        img_size: int = 224,
        patch: int = 16,
        dim: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if img_size % patch:
            raise ValueError(f"img_size {img_size} is not a multiple of the patch size {patch}")
        self.grid = img_size // patch
        self.patch_embed = PatchEmbed(in_channels, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:  # timm's: truncated normal (std 0.02) for weights and positions
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """[1, 1 + h*w, dim]: the stored embedding, its patch part bicubic-resized when (h, w) differs."""
        if (h, w) == (self.grid, self.grid):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = patch_pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return torch.cat([cls_pos, grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_embed.patch
        tokens = self.patch_embed(x)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.position_embedding(x.shape[-2] // p, x.shape[-1] // p)
        return self.head(self.norm(self.blocks(tokens))[:, 0])


def _vit_spec(name: str, input_size: int, description: str, **sizes) -> ModelSpec:
    depth = sizes["depth"]
    return ModelSpec(
        name=name,
        builder=lambda num_classes, in_channels: VisionTransformer(
            num_classes, in_channels, img_size=input_size, **sizes),
        input_size=input_size,
        cam_layer=f"blocks.{depth - 1}.norm1",  # as pytorch-grad-cam's ViT tutorial
        mean=(0.5,) if input_size < 224 else IMAGENET_MEAN,
        std=(0.5,) if input_size < 224 else IMAGENET_STD,
        description=description,
        reshape_transform=tokens_to_map,
        attention="blocks.*.attn.attn_probs",
    )


# Sized for CPU adversarial training next to small-cnn: dim 64 with 4 heads made a PGD-10 training step
# ~3.5x small-cnn's; dim 48 with 3 heads (head size 16 kept) is ~2.5x (benchmarks/bench_step.py).
register(_vit_spec("vit-tiny", 28, "ViT, patch 4, dim 48, depth 4, 3 heads (~80k params) for 28x28 or 32x32 images",
                   patch=4, dim=48, depth=4, heads=3, mlp_ratio=2.0))
register(_vit_spec("vit-b16", 224, "ViT-B/16 (Dosovitskiy et al.; ~86M params) for 224x224 images, for GPUs",
                   patch=16, dim=768, depth=12, heads=12, mlp_ratio=4.0))
register(_vit_spec("deit-s16", 224, "DeiT-Small/16 (Touvron et al.; ~22M params) for 224x224 images, for GPUs",
                   patch=16, dim=384, depth=12, heads=6, mlp_ratio=4.0))
