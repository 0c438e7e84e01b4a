"""Mixed precision (bf16/fp16 autocast) and channels_last memory format, on CUDA only.

Autocast covers the model's forward passes (training step, attack steps, native CAMs). The attack
differentiates with respect to a float32 input, so its gradient, sign step, eps-map budget and
projection stay float32; losses see float32 logits. fp16 needs a GradScaler for the outer loss.
"""

from __future__ import annotations

import contextlib

import torch

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    def __init__(self, amp: str, channels_last: bool, device: torch.device, *, notify: bool = True):
        if amp not in AMP_DTYPES:
            raise ValueError(f"amp '{amp}' is not accepted; accepted: {', '.join(AMP_DTYPES)}")
        cuda = device.type == "cuda"
        if not cuda and (amp != "off" or channels_last) and notify:
            print(f"note: amp={amp} and channels_last={channels_last} apply on CUDA only; "
                  f"training in float32 on {device.type}", flush=True)
        self.device_type = device.type
        self.dtype = AMP_DTYPES[amp] if cuda else None
        self.channels_last = channels_last and cuda
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype is torch.float16 else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward outside autocast, then the optimiser step (through the scaler for fp16)."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
