"""Checks for the notebooks' graded cells: each failure names the quantity, the expected and the
actual value, and a hint, the way a teacher would.

Reference outputs are compared through a *fingerprint* (shape, sums and a few values at fixed
positions) so hidden tests can hold the expected numbers as literals. Weights are set with
``fill_deterministic`` rather than drawn from torch's random initialisation, so the expected
numbers do not depend on how (or in which order) a student happened to create tensors.

The functions below keep their own references to the torch and math functions they use,
taken when this module is first imported, so a notebook that later rebinds, say,
``torch.allclose`` does not change what these checks compute.
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
import types

import torch
from torch import nn

_tolist = torch.Tensor.tolist
_isfinite = math.isfinite
_sin = torch.sin
_arange = torch.arange
_no_grad = torch.no_grad


def isolated() -> types.ModuleType:
    """A private, freshly loaded copy of this module for hidden tests.

    A submission can rebind ``check_close`` in the notebook or patch ``utils.grading`` itself; a copy
    loaded from the file after that is untouched by either.
    """
    spec = importlib.util.spec_from_file_location("utils._grading_isolated", __file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def swapped_in(namespace: dict, **parts):
    """Inside the block, each name in ``parts`` refers to the object given for it in ``namespace`` (a
    notebook's ``globals()``); afterwards the names are put back as they were, or removed.

    A check of a function that calls the student's other functions runs it with the course's versions
    of those, so each graded cell is judged on its own code and one mistake costs its own points once.
    """
    saved = {name: namespace[name] for name in parts if name in namespace}
    namespace.update(parts)
    try:
        yield
    finally:
        for name in parts:
            if name in saved:
                namespace[name] = saved[name]
            else:
                namespace.pop(name, None)


class CheckFailed(AssertionError):
    """A graded check failed; the message says what was expected and what was found."""


def _fail(name: str, expected, got, hint: str = "") -> None:
    message = f"{name}: expected {expected}, got {got}."
    if hint:
        message += f"\nHint: {hint}"
    raise CheckFailed(message)


def check(condition: bool, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def check_written_here(fn, name: str) -> None:
    """Fail unless the function ``name`` was defined in the notebook (module ``__main__``), not imported.

    The course's finished versions live in ``utils``; an answer cell that imports one (``from utils.judge
    import q_sample``) has not answered the question.
    """
    module = getattr(fn, "__module__", None)
    check(callable(fn) and module == "__main__",
          f"{name} must be written in this notebook; this one comes from {module or 'nowhere'}.\n"
          f"Hint: write def {name}(...) in the answer cell instead of importing the course's version")


def check_type(name: str, obj, expected_type, hint: str = "") -> None:
    if not isinstance(obj, expected_type):
        _fail(name, f"a {expected_type.__name__}", f"a {type(obj).__name__}", hint)


def check_defined_here(cls, reference) -> None:
    """``cls`` must be the student's own class, not the finished one from utils (or a subclass of it)."""
    if not isinstance(cls, type) or reference in cls.__mro__:
        raise CheckFailed(
            f"{reference.__name__} must be written in this notebook, not imported from utils.\n"
            f"Hint: write the class in the answer cell above; the finished version in utils is for later notebooks."
        )


def check_shape(name: str, tensor, expected, hint: str = "") -> None:
    """``tensor`` must be a tensor of exactly the shape ``expected``."""
    if not isinstance(tensor, torch.Tensor):
        _fail(name, f"a tensor of shape {list(expected)}", f"a {type(tensor).__name__}", hint)
    if list(tensor.shape) != list(expected):
        _fail(f"{name} shape", list(expected), list(tensor.shape), hint)


def _values(x) -> list[float]:
    if isinstance(x, torch.Tensor):
        return [float(v) for v in _tolist(x.detach().to("cpu", torch.float64).reshape(-1))]
    if isinstance(x, (int, float)):
        return [float(x)]
    out: list[float] = []
    for item in x:
        out.extend(_values(item))
    return out


def check_close(name: str, got, expected, atol: float = 1e-4, rtol: float = 1e-4, hint: str = "") -> None:
    """Every value of ``got`` lies within atol + rtol * |expected| of ``expected``.

    ``got`` and ``expected`` may be tensors, numbers or nested lists of the same size.
    """
    if isinstance(got, torch.Tensor) and isinstance(expected, torch.Tensor) and got.shape != expected.shape:
        _fail(f"{name} shape", list(expected.shape), list(got.shape), hint)
    g, e = _values(got), _values(expected)
    if len(g) != len(e):
        _fail(f"{name} size", f"{len(e)} values", f"{len(g)} values", hint)
    for i, (a, b) in enumerate(zip(g, e)):
        if not _isfinite(a) or abs(a - b) > atol + rtol * abs(b):
            where = f" at position {i}" if len(e) > 1 else ""
            _fail(f"{name}{where}", round(b, 6), round(a, 6) if _isfinite(a) else a, hint)


def stage_outputs(module: nn.Module, stages, *inputs) -> dict:
    """Run ``module(*inputs)`` without gradients and return the first output of each named submodule.

    ``stages`` are attribute names of ``module`` (``"down0"``, ``"up1"``, ...); a stage that the forward
    pass never calls is missing from the result. Raises AttributeError for a name the module lacks.
    """
    seen = {}
    hooks = [getattr(module, name).register_forward_hook(
        lambda m, i, o, name=name: seen.setdefault(name, o)) for name in stages]
    try:
        with _no_grad():
            module(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def check_stages(name: str, module: nn.Module, reference: nn.Module, stages: dict, *inputs,
                 atol: float = 1e-4) -> None:
    """Compare ``module`` with ``reference`` stage by stage on ``inputs`` and name the first that differs.

    ``stages`` maps each attribute name, in the order the forward pass uses them, to what that stage
    holds; the failure quotes it as the hint. Both modules must have the same weights (load the
    reference's state dict first). Each stage's output is compared in shape and value (within ``atol``).
    """
    for stage, holds in stages.items():
        part = getattr(module, stage, None)
        if part is not None and not isinstance(part, nn.Module):
            raise CheckFailed(f"{name}.{stage} is a {type(part).__name__}, not a module, so its output cannot be "
                              f"compared with the course's.\nHint: {stage} holds {holds}")
    got = stage_outputs(module, [s for s in stages if hasattr(module, s)], *inputs)
    want = stage_outputs(reference, list(stages), *inputs)
    for stage, holds in stages.items():
        hint = f"{stage} holds {holds}"
        if stage not in got:
            raise CheckFailed(f"{name}.{stage} was never called as self.{stage}(...) in forward, so its output "
                              f"cannot be compared (calling its .forward or its layers one by one hides it)."
                              f"\nHint: {hint}")
        mine, theirs = got[stage], want[stage]
        if not isinstance(mine, torch.Tensor) or list(mine.shape) != list(theirs.shape):
            _fail(f"{name}.{stage} output shape", list(theirs.shape),
                  list(mine.shape) if isinstance(mine, torch.Tensor) else type(mine).__name__, hint)
        worst = float((mine.detach().double() - theirs.detach().double()).abs().max()) if mine.numel() else 0.0
        if not _isfinite(worst) or worst > atol:
            raise CheckFailed(f"{name}: the first stage whose output differs from the course's U-Net (same "
                              f"weights, same inputs) is {stage}, by up to {worst:.4g}.\nHint: {hint}")


def count_parameters(module: nn.Module) -> int:
    """Number of trainable values in ``module``."""
    return sum(p.numel() for p in module.parameters())


def check_parameters(name: str, module: nn.Module, expected: int, hint: str = "") -> None:
    got = count_parameters(module)
    if got != expected:
        _fail(f"{name} parameter count", f"{expected:,}", f"{got:,}", hint)


def fill_deterministic(module: nn.Module, seed: int = 0) -> nn.Module:
    """Overwrite every parameter with fixed, well-scaled values; return the module.

    Parameters are visited in registration order. Matrices and kernels get
    sin(0.7 * i + 1.3 * k + seed) / sqrt(fan_in); vectors named ``weight`` (norm scales) get
    1 + 0.1 * sin(...), other vectors (biases) 0.1 * sin(...). No random numbers are involved.
    """
    with _no_grad():
        for k, (name, p) in enumerate(module.named_parameters()):
            wave = _sin(_arange(p.numel(), dtype=torch.float64) * 0.7 + 1.3 * k + seed).reshape(p.shape)
            if p.dim() > 1:
                fan_in = p.numel() // p.shape[0]
                values = wave / math.sqrt(max(fan_in, 1))
            elif name.endswith("weight"):
                values = 1.0 + 0.1 * wave
            else:
                values = 0.1 * wave
            p.copy_(values.to(p.dtype))
    return module


def wave_input(shape, seed: int = 0) -> torch.Tensor:
    """A fixed, non-random test input of the given shape with values in [-1, 1]."""
    n = math.prod(shape)
    return _sin(_arange(n, dtype=torch.float64) * 0.37 + seed).reshape(*shape).float()


FINGERPRINT_POINTS = 8


def fingerprint(tensor: torch.Tensor) -> dict:
    """A short summary of a tensor for literal comparisons: shape, sum, sum of |x| and 8 values."""
    flat = tensor.detach().to("cpu", torch.float64).reshape(-1)
    n = flat.numel()
    index = [(i * (n - 1)) // (FINGERPRINT_POINTS - 1) for i in range(FINGERPRINT_POINTS)] if n else []
    return {
        "shape": list(tensor.shape),
        "sum": float(flat.sum()),
        "abs_sum": float(flat.abs().sum()),
        "values": [float(flat[i]) for i in index],
    }


def check_fingerprint(name: str, got, expected: dict, atol: float = 1e-3, rtol: float = 1e-4,
                      hint: str = "") -> None:
    """Compare ``got`` with a fingerprint taken from the reference implementation."""
    check_shape(name, got, expected["shape"], hint)
    actual = fingerprint(got)
    n = max(math.prod(expected["shape"]), 1)
    # Sums add n rounding errors; allow for that, and no more.
    check_close(f"{name} (sum of all values)", actual["sum"], expected["sum"],
                atol=atol * math.sqrt(n), rtol=rtol, hint=hint)
    check_close(f"{name} (sum of absolute values)", actual["abs_sum"], expected["abs_sum"],
                atol=atol * math.sqrt(n), rtol=rtol, hint=hint)
    check_close(f"{name} (values at fixed positions)", actual["values"], expected["values"],
                atol=atol, rtol=rtol, hint=hint)
