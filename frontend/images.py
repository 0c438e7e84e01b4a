"""Pillow helpers: PNG data URLs from the API to bytes, previews, and a mask image."""

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


def mask_png(eps_map: list[list[float]], eps: float, scale: int = 8) -> bytes:
    """White where a pixel has the full budget eps, black elsewhere, upscaled (nearest)."""
    h, w = len(eps_map), len(eps_map[0])
    image = Image.new("L", (w, h))
    image.putdata([255 if v >= eps - 1e-6 else 0 for row in eps_map for v in row])
    return png(image.resize((w * scale, h * scale), Image.NEAREST))


VIRIDIS = [(68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137),
           (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37)]  # matplotlib's viridis, 10 stops


def viridis(t: float) -> tuple[int, int, int]:
    t = min(max(t, 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(t), len(VIRIDIS) - 2)
    a, b, f = VIRIDIS[i], VIRIDIS[i + 1], t - i
    return tuple(round(a[k] + (b[k] - a[k]) * f) for k in range(3))


def value_range(values: list[list[float]]) -> tuple[float, float]:
    flat = [v for row in values for v in row]
    return min(flat), max(flat)


def eps_map_figure(values: list[list[float]], title: str, *, scale: int = 10) -> bytes:
    """The eps-map as a PNG that reads on its own: viridis over the map's own range, a colour bar in /255
    with its end values, and a title. (A grey map from 0 to eps looks near-white: budgets sit near eps.)"""
    from PIL import ImageDraw

    lo, hi = value_range(values)
    span = hi - lo if hi - lo > 1e-9 else 1.0
    h, w = len(values), len(values[0])
    side_w, side_h = w * scale, h * scale
    image = Image.new("RGB", (side_w + 150, side_h + 56), "white")
    map_image = Image.new("RGB", (w, h))
    map_image.putdata([viridis((v - lo) / span) for row in values for v in row])
    image.paste(map_image.resize((side_w, side_h), Image.NEAREST), (10, 40))
    draw = ImageDraw.Draw(image)
    draw.text((10, 12), title, fill="black")
    bar_x, bar_w = side_w + 30, 18
    for y in range(side_h):
        draw.line([(bar_x, 40 + y), (bar_x + bar_w, 40 + y)], fill=viridis(1 - y / max(side_h - 1, 1)))
    draw.rectangle([bar_x, 40, bar_x + bar_w, 40 + side_h], outline="black")
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = 40 + round((1 - frac) * (side_h - 1))
        draw.line([(bar_x + bar_w, y), (bar_x + bar_w + 4, y)], fill="black")
        draw.text((bar_x + bar_w + 8, y - 6), f"{255 * (lo + frac * (hi - lo)):.2f}", fill="black")
    draw.text((bar_x - 4, 40 + side_h + 6), "eps (/255)", fill="black")
    return png(image)
