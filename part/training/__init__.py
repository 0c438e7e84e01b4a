"""Training: the typed config and its presets, the defenses (AT, TRADES, MART), the trainer with PART's
CAM cache and refresh schedule, per-epoch schedules, distributed data parallel, and the speed bench."""

from part.training.config import PRESETS, TrainConfig, parse_number, parse_overrides, preset
from part.training.defenses import DEFENSES, Defense, get_defense
from part.training.schedules import Schedule, parse_schedule
from part.training.trainer import Trainer, train

__all__ = ["DEFENSES", "Defense", "PRESETS", "Schedule", "TrainConfig", "Trainer", "get_defense", "parse_number",
           "parse_overrides", "parse_schedule", "preset", "train"]
