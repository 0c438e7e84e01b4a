"""TensorBoard event files: valid TFRecord framing (CRC-32C), and a run's scalars and probe images per epoch."""

import struct

from part.training.config import preset
from part.training.tensorboard import _masked, crc32c
from part.training.trainer import train

TINY = dict(subset=64, epochs=2, burn_in_epochs=1, eval_n=16, attack_steps=1, eval_steps=1, probe_count=3, batch_size=64)


def records(path):
    data, out = path.read_bytes(), []
    while data:
        header = data[:8]
        (length,) = struct.unpack("<Q", header)
        assert data[8:12] == _masked(header)
        body = data[12:12 + length]
        assert data[12 + length:16 + length] == _masked(body)
        out.append(body)
        data = data[16 + length:]
    return out


def test_crc32c_is_the_castagnoli_checksum():
    assert crc32c(b"123456789") == 0xE3069283  # the check value of CRC-32C


def test_a_run_writes_scalars_and_probe_images_per_epoch(tmp_path):
    run = train(preset("fmnist-part", **TINY), tmp_path / "run")
    (events,) = run.tensorboard_dir.glob("events.out.tfevents.*")
    bodies = records(events)
    assert b"brain.Event:2" in bodies[0] and len(bodies) == 3  # the version, then one event per epoch
    for tag in (b"accuracy/test_pgd_acc", b"accuracy/test_clean_acc", b"loss/train_loss", b"probes/cam",
                b"probes/eps_map", b"eps_map/mean_eps_ratio"):
        assert tag in bodies[2], tag
    assert b"eps_map/mean_eps_ratio" not in bodies[1]  # burn-in: no eps-map yet
    assert bodies[2].count(b"\x89PNG") == 2
