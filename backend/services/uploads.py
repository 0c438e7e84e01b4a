"""Uploaded images, decoded defensively: limits on bytes and pixels, content checked by decoding.

The file name and declared content type are ignored; only a decoder that accepts the bytes decides.
Animated files give their first frame. Modes are brought to grey or RGB: 16-bit and float images
are rescaled (PIL's own conversion would clip them), transparency is composited over black (the
background of Fashion-MNIST-like data), CMYK, palette and YCbCr go through PIL's conversion.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from backend.api.errors import ApiError

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")  # multi-picture JPEGs open as JPEG
ACCEPTED = "PNG, JPEG, WebP, BMP, TIFF, GIF (first frame)"
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
Image.init()  # register every decoder now: `formats=` only finds plugins already loaded


def decode(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Image:
    """A loaded grey ('L') or RGB image from the uploaded bytes, or an ApiError saying why not."""
    if not data:
        raise ApiError(400, f"the uploaded file is empty; send an image ({ACCEPTED})")
    if len(data) > max_bytes:
        raise ApiError(413, f"the upload is {len(data)} bytes; the limit is {max_bytes} bytes")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ApiError(415, f"the upload is not an image this server reads; accepted: {ACCEPTED}") from None
    except Image.DecompressionBombError as err:
        raise ApiError(413, f"the image is too large to decode ({err}); the limit is {max_pixels} pixels") from None
    except Exception as err:  # damaged headers raise many kinds of errors inside the decoders
        raise ApiError(400, f"the image header cannot be read ({type(err).__name__}: {err}); accepted: {ACCEPTED}") from None
    width, height = image.size
    if width < 1 or height < 1 or width * height > max_pixels:
        raise ApiError(413, f"the image is {width}x{height} ({width * height} pixels); "
                            f"the limit is {max_pixels} pixels and at least 1x1")
    try:
        image.seek(0)
        image.load()
    except Exception as err:
        raise ApiError(400, f"the {image.format} image is truncated or corrupted ({err}); "
                            f"send a complete file ({ACCEPTED})") from None
    return normalize_mode(image)


def normalize_mode(image: Image.Image) -> Image.Image:
    try:
        image = ImageOps.exif_transpose(image)  # phone photos are stored rotated
    except Exception:
        pass  # a broken EXIF block is not worth refusing the image for
    if image.mode in WIDE_MODES:
        return _rescale_wide(image)
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if image.mode not in ("L", "RGB"):
        return image.convert("RGB")
    return image


def _rescale_wide(image: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey to 8 bits by value range, not by clipping."""
    array = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = float(np.nanmax(array)) if array.size else 1.0
        array = np.nan_to_num(array / (top if top > 1 else 1.0), nan=0.0)
    else:
        top = float(array.max()) if array.size else 0.0
        array = array / (65535.0 if top > 255 or image.mode.startswith("I;16") else 255.0)
    return Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8), mode="L")
