"""Context managers that change a module's mode and always put it back."""

from __future__ import annotations

import contextlib

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Evaluate with frozen BatchNorm statistics; restore train/eval mode on exit, even on error."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
