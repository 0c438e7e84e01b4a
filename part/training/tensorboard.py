"""TensorBoard event files of a run (RUN/tensorboard/), so `tensorboard --logdir checkpoints` shows runs side by side.

Per epoch (the step): the metrics row as scalars (losses, natural and PGD accuracy, eps-map statistics,
the schedules), and the probe images' CAMs and eps-maps as one image each. Written without TensorFlow or
the tensorboard package: an event file is TFRecord framing (length, masked CRC-32C, data, masked CRC-32C)
around `Event` protocol buffers, encoded here by hand (event.proto, summary.proto field numbers). A resumed
run writes a new file beside the old ones; TensorBoard reads a folder's files as one run.
"""

from __future__ import annotations

import io
import math
import socket
import struct
import time
from pathlib import Path

import torch

GROUPS = (("acc", "accuracy"), ("loss", "loss"), ("eps_fraction", "eps_map"), ("eps_ratio", "eps_map"), ("_s", "time"))


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> bytes:
    crc = crc32c(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _bytes(number: int, data: bytes) -> bytes:
    return _field(number, 2, _varint(len(data)) + data)


def _event(step: int, *, values: list[bytes] = (), file_version: str | None = None) -> bytes:
    out = _field(1, 1, struct.pack("<d", time.time())) + _field(2, 0, _varint(step))
    if file_version is not None:
        out += _bytes(3, file_version.encode())
    if values:
        out += _bytes(5, b"".join(_bytes(1, v) for v in values))  # Summary { repeated Value value = 1; }
    return out


def scalar_value(tag: str, value: float) -> bytes:
    return _bytes(1, tag.encode()) + _field(2, 5, struct.pack("<f", value))  # Value.tag, Value.simple_value


def image_value(tag: str, image: torch.Tensor) -> bytes:
    """An image [C,H,W] (or [H,W]) in [0,1] as Value.image: a PNG with its size and channels."""
    from PIL import Image

    image = image.float().clamp(0, 1)
    image = image[None] if image.dim() == 2 else image
    pixels = (image * 255).round().to(torch.uint8).permute(1, 2, 0).squeeze(-1).numpy()
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    c, h, w = image.shape
    encoded = _field(1, 0, _varint(h)) + _field(2, 0, _varint(w)) + _field(3, 0, _varint(c)) + _bytes(4, png.getvalue())
    return _bytes(1, tag.encode()) + _bytes(4, encoded)


class EventWriter:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}"
        self._write(_event(0, file_version="brain.Event:2"))

    def _write(self, event: bytes) -> None:
        header = struct.pack("<Q", len(event))
        with open(self.path, "ab") as f:  # opened per record: a killed trainer leaves whole records behind
            f.write(header + _masked(header) + event + _masked(event))

    def add(self, step: int, values: list[bytes]) -> None:
        if values:
            self._write(_event(step, values=values))


def _tag(key: str) -> str:
    return next((f"{group}/{key}" for needle, group in GROUPS if needle in key), f"schedule/{key}")


def epoch_values(row: dict, probes: dict, eps: float) -> list[bytes]:
    """Scalars of a metrics row and probe images (CAMs and eps-maps side by side, one row per probe)."""
    values = [scalar_value(_tag(k), float(v)) for k, v in row.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and k != "epoch"]
    eps_map = probes["eps_map"].float()[:, 0]
    values.append(scalar_value("eps_map/probe_mean_ratio", float(eps_map.mean()) / eps if eps else 0.0))
    cams = probes["cam"].float()
    values.append(image_value("probes/cam", torch.cat(list(cams), dim=1)))
    values.append(image_value("probes/eps_map", torch.cat(list(eps_map / max(eps, 1e-12)), dim=1)))
    return values
