"""Mixed precision: bf16 autocast on CUDA and on CPUs that compute bfloat16 natively, fp16 on CUDA only,
and channels_last memory format on CUDA.

Autocast covers the model's forward passes (training step, attack steps, native CAMs). The attack
differentiates with respect to a float32 input, so its gradient, sign step, eps-map budget and
projection stay float32; losses see float32 logits; weights and the optimiser stay float32.
fp16 needs a GradScaler for the outer loss, and CPUs have no fast float16: on CPU it is refused.

`amp=auto` resolves once, when a run starts, to bf16 where the hardware computes it natively (a CUDA
GPU with bf16, or a CPU with AVX512-BF16 or AMX) and to off (float32) elsewhere; the run's config
records the resolved value, so a resume or a reproduction trains in the same precision.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES = ("auto", *AMP_DTYPES)
DTYPE_NAMES = {None: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX512-BF16 / AMX; "bf16" is the Arm feature name


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The CPU features that compute bfloat16 natively, as the kernel lists them (empty when unknown).

    PART_CPU_BF16=0 makes this CPU count as one without them (amp=auto then trains in float32), so a
    machine, or a test suite, can keep float32 whatever the processor.
    """
    if os.environ.get("PART_CPU_BF16", "").strip() == "0":
        return []
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return []
    listed = {w for line in text.splitlines() if line.split(":")[0].strip() in ("flags", "Features")
              for w in line.split(":", 1)[1].split()}
    return [f for f in CPU_BF16_FLAGS if f in listed]


def bf16_native(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and bool(cpu_bf16_flags())


def resolve_amp(amp: str, device: torch.device) -> str:
    """The precision a run on `device` trains in: off, bf16 or fp16 (auto resolved; fp16 refused off CUDA)."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp '{amp}' is not accepted; accepted: {', '.join(AMP_CHOICES)}")
    if amp == "auto":
        return "bf16" if bf16_native(device) else "off"
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(f"amp 'fp16' needs CUDA (training is on {device.type}); on CPU use amp=bf16, auto or off")
    if amp == "bf16" and device.type not in ("cuda", "cpu"):
        raise ValueError(f"amp 'bf16' runs on cuda or cpu, not {device.type}; use amp=off")
    return amp


def capability() -> dict:
    """What this machine offers, for `part bench` and the notices: the CPU's bf16 flags and torch's ISA."""
    return {"cpu_bf16_flags": cpu_bf16_flags(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_bf16_native": bool(cpu_bf16_flags())}


class Precision:
    def __init__(self, amp: str, channels_last: bool, device: torch.device, *, notify: bool = True):
        self.amp = resolve_amp(amp, device)
        cuda = device.type == "cuda"
        if self.amp == "bf16" and not bf16_native(device) and notify:
            print(f"note: amp=bf16 on a {device.type} without native bfloat16 is emulated and may be slower "
                  "than float32 (amp=auto picks float32 here)", flush=True)
        if channels_last and not cuda and notify:
            print(f"note: channels_last applies on CUDA only; ignored on {device.type}", flush=True)
        self.device_type = device.type
        self.dtype = AMP_DTYPES[self.amp]
        self.channels_last = channels_last and cuda
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype is torch.float16 else None

    @property
    def name(self) -> str:
        """float32, bfloat16 or float16: the dtype of the autocast forward passes."""
        return DTYPE_NAMES[self.dtype]

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


class AutocastForward(torch.nn.Module):
    """`model` with its forward under autocast and float32 outputs: evaluation in bf16/fp16, on request only."""

    def __init__(self, model: torch.nn.Module, amp: str, device: torch.device):
        super().__init__()
        self.model = model
        self.precision = Precision(amp, False, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            out = self.model(x)
        return out.float()
