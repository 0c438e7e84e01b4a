"""Images in and out: decode a file into a model input, render a CAM as a jet overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pytorch_grad_cam.utils.image import show_cam_on_image

Image.MAX_IMAGE_PIXELS = 50_000_000  # PIL raises DecompressionBombError beyond twice this


def open_image(path: str | Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such image: {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path} is not a readable image ({err}); accepted: PNG, JPEG, WebP, BMP, TIFF, GIF") from None
    return image


def to_tensor(image: Image.Image, channels: int, size: int) -> torch.Tensor:
    """[1,C,size,size] in [0,1]: first frame, converted to grey or RGB, resized (bicubic)."""
    image.seek(0) if getattr(image, "n_frames", 1) > 1 else None
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))[None]


def jet_overlay(x: torch.Tensor, cam: torch.Tensor, *, scale: int = 1, image_weight: float = 0.5) -> np.ndarray:
    """uint8 HxWx3 overlay of one image x [C,H,W] and its CAM [H,W], the paper's Figure 2 look."""
    rgb = x.detach().float().cpu().expand(3, -1, -1).permute(1, 2, 0).numpy()
    overlay = show_cam_on_image(rgb, cam.detach().float().cpu().numpy(), use_rgb=True, image_weight=image_weight)
    return np.kron(overlay, np.ones((scale, scale, 1), dtype=np.uint8)) if scale > 1 else overlay


def save_png(array: np.ndarray, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")
