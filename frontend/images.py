"""Pillow helpers: PNG data URLs from the API to bytes, the jet colour bar, and a mask image."""

from __future__ import annotations

import base64
import io

from PIL import Image

PREFIX = "data:image/png;base64,"


def decode(data_url: str) -> bytes:
    """PNG bytes of a `data:image/png;base64,...` URL."""
    if not data_url.startswith(PREFIX):
        raise ValueError("expected a PNG data URL from the API")
    return base64.b64decode(data_url[len(PREFIX):])


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def preview(data: bytes, side: int = 160) -> tuple[bytes | None, str]:
    """(a PNG thumbnail or None, a description) of uploaded bytes; unreadable files get only the description."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            text = f"{image.width}x{image.height} {image.mode}"
            thumb = image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode)
            thumb.thumbnail((side, side), Image.NEAREST)
            return png(thumb), text
    except (OSError, ValueError, Image.DecompressionBombError):
        return None, f"{len(data)} bytes that Pillow cannot read as an image"


def jet(t: float) -> tuple[int, int, int]:
    """The jet colour of t in [0,1] (what the overlays use): blue, cyan, yellow, red."""
    t = min(max(t, 0.0), 1.0)
    return tuple(round(255 * min(max(1.5 - abs(4 * t - c), 0.0), 1.0)) for c in (3, 2, 1))


def jet_bar(width: int = 512, height: int = 14) -> bytes:
    """A horizontal jet colour bar, 0 on the left and 1 on the right."""
    image = Image.new("RGB", (width, height))
    for x in range(width):
        colour = jet(x / (width - 1))
        for y in range(height):
            image.putpixel((x, y), colour)
    return png(image)


def mask_png(eps_map: list[list[float]], eps: float, scale: int = 8) -> bytes:
    """White where a pixel has the full budget eps, black elsewhere, upscaled (nearest)."""
    h, w = len(eps_map), len(eps_map[0])
    image = Image.new("L", (w, h))
    image.putdata([255 if v >= eps - 1e-6 else 0 for row in eps_map for v in row])
    return png(image.resize((w * scale, h * scale), Image.NEAREST))
