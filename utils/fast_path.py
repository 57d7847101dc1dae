"""The switches of one execution path (``FastPath``), and the CPU candidates worth timing.

The maths never changes; a *path* is a handful of switches applied around an unchanged model:

- ``channels_last``: store 4-D weights (and so activations) as NHWC, the layout convolution
  libraries (cuDNN, oneDNN) run fastest on.
- ``compile``: ``torch.compile`` the model (Inductor fuses GroupNorm, GELU and adds into few kernels).
- ``cudagraphs``: compile mode ``"reduce-overhead"``: record the kernels of one step once and
  replay them, so launching a few hundred tiny kernels costs one launch (CUDA only).
- ``autocast_dtype``: run matrix products and convolutions in bfloat16 under ``torch.autocast``;
  weights, optimizer state and the loss stay float32, so no loss scaling is needed.
- ``inference_mode``: sample under ``torch.inference_mode`` (no autograd bookkeeping at all).
- ``fused_adam``: one fused optimizer kernel for all parameters (CUDA only).
- ``threads``: run with this many CPU threads (``torch.set_num_threads``), restored afterwards.

``utils.fast`` chooses a path for the device at hand, ``utils.path_apply`` applies one around a
model, and ``utils.path_probe`` times the candidates where no rule is safe.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch

Purpose = Literal["train", "sample"]

# The reason of a path still to be measured, left out of the reason once the timing has chosen.
MEASURE_REASON = "native bfloat16: timed on the model's first call"


@dataclass(frozen=True)
class FastPath:
    """The switches of one execution path (see the module docstring); all off is plain eager.

    Attributes:
        device_type: "cuda", "cpu", "mps", ...
        channels_last: convert the model's 4-D weights to NHWC.
        compile: wrap the model in ``torch.compile``.
        cudagraphs: compile with mode "reduce-overhead" (replays CUDA graphs); needs compile.
        autocast_dtype: dtype for ``torch.autocast`` (torch.bfloat16), or None for float32.
        inference_mode: sample under ``torch.inference_mode`` (sampling only).
        fused_adam: use ``torch.optim.Adam(fused=True)`` (training only).
        threads: CPU threads to run with, or None to keep the current count.
        measure: not decided yet: time ``cpu_candidates`` on the model's first real call and run
            the fastest (``utils.path_probe``); the other switches are ignored until then.
        reason: why this path, in a few words.
    """

    device_type: str = "cpu"
    channels_last: bool = False
    compile: bool = False
    cudagraphs: bool = False
    autocast_dtype: torch.dtype | None = None
    inference_mode: bool = False
    fused_adam: bool = False
    threads: int | None = None
    measure: bool = False
    reason: str = ""

    @property
    def is_eager(self) -> bool:
        """True when the maths runs as plain float32 eager PyTorch (the thread count aside)."""
        return not (self.channels_last or self.compile or self.autocast_dtype is not None
                    or self.inference_mode or self.fused_adam or self.measure)

    @property
    def compile_mode(self) -> str | None:
        """The ``mode`` argument for ``torch.compile``."""
        return "reduce-overhead" if self.cudagraphs else None

    @property
    def switches(self) -> str:
        """The switches alone, e.g. ``channels_last + bfloat16 autocast`` (``eager float32``)."""
        parts = [name for on, name in ((self.channels_last, "channels_last"),
                                       (self.autocast_dtype is not None, "bfloat16 autocast"))
                 if on]
        return " + ".join(parts) or "float32"

    @property
    def description(self) -> str:
        """A one-line summary for notebooks and logs, e.g. ``cpu: eager float32, 2 threads (...)``."""
        parts = []
        if self.channels_last:
            parts.append("channels_last")
        if self.compile:
            parts.append("torch.compile" + (" + CUDA graphs" if self.cudagraphs else ""))
        if self.autocast_dtype is not None:
            parts.append(f"{str(self.autocast_dtype).replace('torch.', '')} autocast")
        if self.inference_mode:
            parts.append("inference_mode")
        if self.fused_adam:
            parts.append("fused Adam")
        text = " + ".join(parts) if parts else "eager float32"
        if self.measure:
            text = "the fastest of " + " | ".join(c.switches for c in cpu_candidates(self))
        if self.threads is not None:
            text += f", {self.threads} thread{'s' if self.threads > 1 else ''}"
        return f"{self.device_type}: {text}" + (f" ({self.reason})" if self.reason else "")


def cpu_candidates(path: FastPath) -> list[FastPath]:
    """The CPU paths worth timing where bfloat16 is native: float32 and bfloat16 autocast, each
    with and without channels_last (which one wins depends on the network: measured 1.97x for
    bfloat16 alone on notebook 03's U-Net, 1.45x for bfloat16 + channels_last on 02's), float32
    first: the probe (``utils.path_probe.fastest``) keeps a later one only if it is clearly faster."""
    base = replace(path, measure=False, compile=False, cudagraphs=False, fused_adam=False, reason="")
    return [replace(base, channels_last=cl, autocast_dtype=dtype)
            for dtype in (None, torch.bfloat16) for cl in (False, True)]
