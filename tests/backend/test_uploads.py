"""Uploads: broken files get a 4xx with a message; awkward but valid images are converted correctly."""

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from backend.services import uploads
from backend.api.errors import ApiError
from tests.backend.conftest import explain_upload, make_client, png


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but holds almost no data (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")


def animated_gif() -> bytes:
    frames = [Image.new("L", (28, 28), 255), Image.new("L", (28, 28), 0)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


BROKEN = {
    "empty": (b"", "x.png", 400, "empty"),
    "truncated": (png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)))[:5000],
                  "x.png", 400, "truncated"),
    "text": (b"hello, this is not an image\n" * 20, "notes.txt", 415, "accepted: PNG"),
    "text named png": (b"GIF89a? no, just text", "photo.png", 415, "accepted: PNG"),
    "30000x30000 header": (png_header(30000, 30000), "bomb.png", 413, "limit"),
    "damaged header": (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "x.png", 415, "accepted: PNG"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_uploads_get_a_4xx_with_a_message(client, name):
    data, filename, status, words = BROKEN[name]
    r = explain_upload(client, data, filename)
    assert r.status_code == status, r.text[:200]
    assert words in r.json()["detail"]


def _input_pixels(body) -> np.ndarray:
    raw = base64.b64decode(body["input"]["image_png"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)), dtype=np.float64)[::8, ::8]


def _16bit() -> bytes:
    return png(Image.fromarray(np.full((28, 28), 32768, dtype=np.uint16)))


def _rgba() -> bytes:
    image = Image.new("RGBA", (28, 28), (255, 255, 255, 0))  # white, fully transparent
    image.paste((255, 255, 255, 255), (7, 7, 21, 21))
    return png(image)


AWKWARD = {  # name: (bytes, filename, expected mean grey of the model input in 0..255)
    "16-bit grey": (_16bit(), "deep.png", 128),
    "CMYK JPEG": (png(Image.new("CMYK", (40, 40), (0, 0, 0, 255)), "JPEG"), "print.jpg", 0),
    "animated GIF (first frame)": (animated_gif(), "anim.gif", 255),
    "RGBA over black": (_rgba(), "cutout.png", 255 * 14 * 14 / 28 / 28),
    "PNG named .jpg": (png(Image.new("L", (28, 28), 255)), "wrong.jpg", 255),
    "palette with transparency": (png(Image.new("P", (28, 28), 0), transparency=0), "p.png", 0),
    "1-bit BMP": (png(Image.new("1", (28, 28), 1), "BMP"), "bw.bmp", 255),
    "float TIFF": (png(Image.fromarray(np.full((28, 28), 0.5, dtype=np.float32)), "TIFF"), "f.tif", 128),
    "WebP": (png(Image.new("RGB", (28, 28), (255, 255, 255)), "WEBP", lossless=True), "x.webp", 255),
    "huge but allowed": (png(Image.new("L", (3000, 2000), 255)), "big.png", 255),
}


@pytest.mark.parametrize("name", list(AWKWARD))
def test_awkward_but_valid_images_are_converted(client, name):
    data, filename, grey = AWKWARD[name]
    r = explain_upload(client, data, filename)
    assert r.status_code == 200, r.text[:200]
    assert abs(_input_pixels(r.json()).mean() - grey) <= 2


def test_byte_and_pixel_limits_come_from_the_settings(run_root):
    with make_client(run_root, max_upload_bytes=2000, max_upload_pixels=100 * 100) as c:
        noisy = png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)))
        r = explain_upload(c, noisy)
        assert r.status_code == 413 and "limit is 2000 bytes" in r.json()["detail"]
        r = explain_upload(c, png(Image.new("L", (101, 100))))
        assert r.status_code == 413 and "101x100" in r.json()["detail"]
        huge = c.post("/api/explain", content=b"x" * 100_000, headers={"content-type": "multipart/form-data; boundary=b"})
        assert huge.status_code == 413 and "request body" in huge.json()["detail"]


def test_decode_refuses_by_content_not_name():
    with pytest.raises(ApiError) as err:
        uploads.decode(b"BM" + b"\0" * 10, max_bytes=10**6, max_pixels=10**6)
    assert err.value.status in (400, 415)
    image = uploads.decode(png(Image.new("LA", (5, 5), (255, 255))), max_bytes=10**6, max_pixels=10**6)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)
