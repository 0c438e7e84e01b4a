"""Images in and out: decode a file into a model input, render a CAM as a jet overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError


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


CAM_COLORMAP = "jet"  # matplotlib's: every CAM overlay, figure and colour bar of the studio uses it


def cam_colours(values: np.ndarray) -> np.ndarray:
    """float RGB [..., 3] in [0,1] of CAM values in [0,1], by matplotlib's jet."""
    import matplotlib

    return matplotlib.colormaps[CAM_COLORMAP](np.clip(values, 0, 1))[..., :3]


def colour_stops(count: int = 9) -> list[str]:
    """`count` evenly spaced colours of the CAM colormap as #rrggbb, 0 to 1 (for scales drawn elsewhere)."""
    rgb = np.rint(cam_colours(np.linspace(0, 1, count)) * 255).astype(int)
    return ["#%02x%02x%02x" % tuple(c) for c in rgb]


def jet_overlay(x: torch.Tensor, cam: torch.Tensor, *, scale: int = 1, image_weight: float = 0.5) -> np.ndarray:
    """uint8 HxWx3 overlay of one image x [C,H,W] and its CAM [H,W], the paper's Figure 2 look: the blend of
    pytorch-grad-cam's show_cam_on_image ((1 - w) heatmap + w image, scaled to a maximum of 1)."""
    rgb = x.detach().float().cpu().expand(3, -1, -1).permute(1, 2, 0).numpy()
    heat = cam_colours(cam.detach().float().cpu().numpy())
    blend = (1 - image_weight) * heat + image_weight * rgb
    overlay = np.rint(255 * blend / max(float(blend.max()), 1e-12)).astype(np.uint8)
    return np.kron(overlay, np.ones((scale, scale, 1), dtype=np.uint8)) if scale > 1 else overlay


def save_png(array: np.ndarray, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


# -- uploads brought to a dataset's look ------------------------------------------------------------
def conversion_notes(image: Image.Image, channels: int, size: int) -> list[str]:
    """What `to_tensor` does to this image that a person should know: shrinking, squashing, colour loss."""
    w, h = image.size
    notes = []
    if max(w, h) > size:
        notes.append(f"shrunk from {w}x{h} to {size}x{size} pixels ({w * h / size ** 2:.0f}x fewer pixels)")
    elif min(w, h) < size:
        notes.append(f"enlarged from {w}x{h} to {size}x{size} pixels")
    if w != h and abs(w / h - 1) > 0.05:
        notes.append(f"aspect ratio {w}:{h} squashed to a square")
    if channels == 1 and image.mode != "L":
        notes.append(f"converted from {image.mode} colour to greyscale")
    elif channels == 3 and image.mode == "L":
        notes.append("greyscale copied into 3 colour channels")
    return notes


def _dark_object_style(grey: np.ndarray, threshold: float) -> tuple[np.ndarray, list[str]]:
    """A light-on-black object, tightly framed: Fashion-MNIST's look (and MNIST's)."""
    steps = []
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    if background > 0.5:
        grey, background = 1.0 - grey, 1.0 - background
        steps.append("inverted the light background to black")
    grey = np.clip((grey - background) / max(1.0 - background, 1e-6), 0.0, 1.0)
    if background > 0.02:
        steps.append(f"set the background ({255 * background:.0f}/255) to black")
    top = float(grey.max())
    if 0 < top < 0.95:
        grey = grey / top
        steps.append("stretched the contrast to the full range")
    rows, cols = np.nonzero(grey > max(threshold, 0.1))
    if len(rows):
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        if (r1 - r0, c1 - c0) != grey.shape:
            grey = grey[r0:r1, c0:c1]
            steps.append(f"cropped to the object ({c1 - c0}x{r1 - r0} pixels)")
    h, w = grey.shape
    margin = round(max(h, w) / 26)  # Fashion-MNIST's objects span about 26 of its 28 pixels
    side = max(h, w) + 2 * margin
    square = np.zeros((side, side), dtype=grey.dtype)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = grey
    steps.append(f"padded to a {side}x{side} square with black (margin {margin} px)")
    return square, steps


def fit_to_style(image: Image.Image, dataset: str, channels: int, size: int) -> tuple[torch.Tensor, list[str]]:
    """[1,C,size,size] in [0,1] made to look like the dataset's images, and the steps taken, in words.

    Datasets of light objects on black (their record gives object_threshold: Fashion-MNIST): to grey,
    invert a light background, background to black, contrast stretched, cropped to the object, padded
    to a square, resized. Other datasets (photos): centre-cropped to a square, then resized, so nothing
    is squashed.
    """
    from part.data.datasets import DATASETS

    image.seek(0) if getattr(image, "n_frames", 1) > 1 else None
    info = DATASETS.get(dataset)
    if info is not None and info.object_threshold is not None and channels == 1:
        grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
        grey, steps = _dark_object_style(grey, info.object_threshold)
        fitted = Image.fromarray((grey * 255).round().astype(np.uint8), mode="L")
    else:
        w, h = image.size
        side = min(w, h)
        fitted, steps = image, []
        if w != h:
            left, top = (w - side) // 2, (h - side) // 2
            fitted = image.crop((left, top, left + side, top + side))
            steps.append(f"centre-cropped to a {side}x{side} square")
    if fitted.size != (size, size):
        steps.append(f"resized {fitted.size[0]}x{fitted.size[1]} to {size}x{size}")
    return to_tensor(fitted, channels, size), steps
