"""Tensors to what a browser draws: PNG data URLs and nested lists of rounded values."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

from part.explain.images import jet_overlay

DISPLAY_SIDE = 224  # images are upscaled (nearest) to about this side, as `part cam` does


def scale_for(side: int) -> int:
    return max(1, DISPLAY_SIDE // max(side, 1))


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)  # speed over size: images are small
    return buffer.getvalue()


def data_url(array: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(array)).decode()


def _upscale(array: np.ndarray, scale: int) -> np.ndarray:
    return array.repeat(scale, 0).repeat(scale, 1) if scale > 1 else array


def image_array(x: torch.Tensor, scale: int = 1) -> np.ndarray:
    """uint8 HxW (grey) or HxWx3 from one image x [C,H,W] in [0,1]."""
    array = (x.detach().float().cpu().clamp(0, 1) * 255).round().byte().numpy()
    array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    return _upscale(np.ascontiguousarray(array), scale)


def image_url(x: torch.Tensor) -> str:
    return data_url(image_array(x, scale_for(x.shape[-1])))


def overlay_url(x: torch.Tensor, cam: torch.Tensor) -> str:
    """The paper's Figure 2 look: jet CAM over the image."""
    return data_url(jet_overlay(x, cam, scale=scale_for(x.shape[-1])))


def outline_url(mask: torch.Tensor) -> str:
    """The object's outline as a transparent RGBA PNG at display scale, drawn over a map by the page: the
    object's pixels that touch the background (4-neighbours), in white with a dark rim."""
    m = mask.detach().cpu().bool().numpy()
    pad = np.pad(m, 1)
    inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    edge = _upscale((m & ~inner).astype(np.uint8), scale_for(m.shape[-1])).astype(bool)
    rgba = np.zeros(edge.shape + (4,), np.uint8)
    rgba[edge] = (255, 255, 255, 235)
    return data_url(rgba)


def values(t: torch.Tensor, digits: int = 4) -> list:
    return np.round(t.detach().float().cpu().numpy().astype(np.float64), digits).tolist()


def perturbation_url(delta: torch.Tensor, eps: float) -> str:
    """delta [C,H,W] amplified to the full range: grey 0.5 is no change, black/white is -eps/+eps."""
    amplified = 0.5 + delta / (2 * max(eps, 1e-8))
    return image_url(amplified.clamp(0, 1))
