"""Runtime facts and the process-wide state the course touches: where the course lives, the
device, the seeds, and a model's training mode."""
from __future__ import annotations

import contextlib
import random
from pathlib import Path

import torch
from torch import nn

# The top of the course (the folder holding utils/, notebooks/, data/ and checkpoints/).
COURSE_ROOT = Path(__file__).resolve().parent.parent


def default_device() -> torch.device:
    """The best device on this machine: CUDA, then Apple MPS, then the CPU.

    Use it once, as a default, when a notebook creates its model; every function in ``utils``
    reads the device from the tensors or modules it is given.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator with that seed.

    (Python's string hashing is fixed when the interpreter starts, by PYTHONHASHSEED in its
    environment; no function can change it for a running process.)

    Args:
        seed: any integer in [0, 2**32).
    """
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA and MPS too
    try:
        import numpy
    except ImportError:  # numpy is optional for the course code itself
        pass
    else:
        numpy.random.seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def eval_mode(model):
    """Run the block with ``model`` in eval mode (BatchNorm on running statistics), then restore.

    Anything that is not an ``nn.Module`` (a plain function wrapping one, say) is left alone.
    """
    training = isinstance(model, nn.Module) and model.training
    if training:
        model.eval()
    try:
        yield model
    finally:
        if training:
            model.train()
