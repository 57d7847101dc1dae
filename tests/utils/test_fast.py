"""The fast paths (utils.fast) choose sensibly and train and sample like plain eager float32.

Every switch is exercised on the CPU with a small U-Net (img_size 8, down_chs (8, 32, 32)):
the same start, batches, timesteps and noise on each path must give the same losses (relative
tolerances; first step, from identical weights / later steps):

- float32 paths (channels_last, torch.compile) differ only in the order of floating-point sums:
  the first loss agrees to ``FP32_RTOL[0]``. Adam's first updates are close to lr * sign(gradient),
  so a weight whose gradient is nearly zero may move by +lr on one path and -lr on the other;
  later losses therefore agree to ``FP32_RTOL[1]``.
- bfloat16 autocast keeps 8 significant bits (up to 2^-8, about 0.4%, per rounding): losses agree
  to ``BF16_RTOL``, about a percent.
"""
from __future__ import annotations

import pytest
import torch

from utils import fast
from utils.ddpm_utils import DDPM
from utils.fast import FastPath, choose_path, fit_to_device, resolve_path
from utils.training import train
from utils.unet_utils import UNet

_REAL_BUSY_CORES = fast.busy_cores
SMALL = dict(T=20, img_size=8, down_chs=(8, 32, 32))
STEPS, BATCH = 3, 16
FP32_RTOL = (1e-5, 1e-3)
BF16_RTOL = (1e-2, 3e-2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch):
    monkeypatch.delenv("COURSE_EAGER", raising=False)
    monkeypatch.delenv("COURSE_THREADS", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(fast, "busy_cores", lambda: 0)  # choose as on an idle machine
    fast.process_threads.cache_clear()
    yield
    fast.process_threads.cache_clear()


def _batches():
    """STEPS batches of (x0, t, noise): everything random is fixed up front, so paths compare."""
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(BATCH, 1, 8, 8, generator=g) * 2 - 1,
             torch.randint(0, SMALL["T"], (BATCH,), generator=g),
             torch.randn(BATCH, 1, 8, 8, generator=g)) for _ in range(STEPS)]


def _train(path):
    torch.manual_seed(0)
    model, ddpm = UNet(**SMALL), DDPM(T=SMALL["T"])
    history = train(model, lambda m, b: ddpm.training_loss(m, b[0], b[1], noise=b[2]), _batches(),
                    epochs=1, lr=1e-3, progress=False, fast=path)
    return model, history


def _assert_trains_alike(losses, eager, rtol):
    losses = torch.tensor(losses)
    torch.testing.assert_close(losses[0], eager[0], rtol=rtol[0], atol=0)
    torch.testing.assert_close(losses, eager, rtol=rtol[1], atol=0)


@pytest.fixture(scope="module")
def eager_losses():
    _, history = _train(False)
    assert "eager float32" in history.path
    return torch.tensor(history.losses)


# -- choosing a path ----------------------------------------------------------------------------
def test_cpu_paths_follow_the_measured_rules(monkeypatch):
    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: False)  # AVX2 / AVX-512 without BF16
    train_path = choose_path("cpu", "train")
    assert train_path.channels_last and not train_path.inference_mode
    assert not (train_path.cudagraphs or train_path.autocast_dtype or train_path.fused_adam)
    assert train_path.compile == (fast.cpu_has_avx512() and fast.can_compile("cpu"))
    sample_path = choose_path("cpu", "sample")
    assert sample_path.inference_mode and sample_path.channels_last
    assert not (sample_path.compile or sample_path.cudagraphs or sample_path.autocast_dtype)
    # Compiling on a CPU: only where it measured faster (AVX-512), only for runs that repay it.
    monkeypatch.setattr(fast, "can_compile", lambda device_type: True)
    monkeypatch.setattr(fast, "cpu_has_avx512", lambda: True)
    assert choose_path("cpu", "train", steps=5_000).compile
    assert not choose_path("cpu", "train", steps=200).compile
    assert not choose_path("cpu", "sample", steps=5_000).compile
    monkeypatch.setattr(fast, "cpu_has_avx512", lambda: False)
    assert not choose_path("cpu", "train", steps=5_000).compile


def test_native_bf16_cpus_time_four_candidates(monkeypatch):
    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: True)
    for purpose in ("train", "sample"):
        path = choose_path("cpu", purpose, steps=5_000)
        assert path.measure and not path.is_eager and not path.compile
        assert path.inference_mode == (purpose == "sample")
        candidates = fast.cpu_candidates(path)
        assert {(c.channels_last, c.autocast_dtype) for c in candidates} == {
            (False, None), (True, None), (False, torch.bfloat16), (True, torch.bfloat16)}
        assert all(not c.measure and c.inference_mode == path.inference_mode for c in candidates)
        assert "bfloat16 autocast" in path.description and "fastest of" in path.description
    monkeypatch.setenv("COURSE_EAGER", "1")
    assert choose_path("cpu").is_eager
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # grading never times anything
    monkeypatch.delenv("COURSE_EAGER")
    assert choose_path("cpu", "sample").is_eager
    assert not fit_to_device(FastPath("cpu", measure=True), "cuda").measure


def test_the_probe_keeps_the_quickest_and_remembers_it():
    from utils import path_probe

    path_probe.forget()
    seconds = {"a": 0.3, "b": 0.1, "c": 0.2}
    calls = []

    def time_one(c):
        calls.append(c)
        return seconds[c] if len(calls) > 3 else 9.0  # warm-up calls are slow and ignored

    winner, best = path_probe.fastest(list(seconds), time_one, ("key",), rounds=2)
    assert winner == "b" and best == seconds and len(calls) == 3 + 2 * 3
    assert path_probe.fastest(list(seconds), lambda c: 1 / 0, ("key",))[0] == "b"  # not timed again
    path_probe.forget()


def test_the_probe_keeps_an_earlier_candidate_unless_a_later_one_is_clearly_faster():
    from utils import path_probe

    path_probe.forget()
    near = {"float32": 0.105, "bfloat16": 0.100}  # 5% apart: noise, the exact path stays
    assert path_probe.fastest(list(near), near.__getitem__, ("near",))[0] == "float32"
    far = {"float32": 0.2, "bfloat16": 0.1}
    assert path_probe.fastest(list(far), far.__getitem__, ("far",))[0] == "bfloat16"
    assert path_probe.fastest(list(far), far.__getitem__, ("strict",), margin=1.5)[0] == "float32"
    # each change must pay: bfloat16 is 5% faster than float32 only, its channels_last variant 12%
    mixed = {"float32": 1.0, "float32 + channels_last": 1.02, "bfloat16": 0.95, "bfloat16 + channels_last": 0.88}
    assert path_probe.fastest(list(mixed), mixed.__getitem__, ("mixed",))[0] == "bfloat16 + channels_last"
    mixed["bfloat16 + channels_last"] = 0.93
    assert path_probe.fastest(list(mixed), mixed.__getitem__, ("mixed 2",))[0] == "float32"
    path_probe.forget()


def test_the_thread_count_is_decided_once_per_process(monkeypatch):
    torch.set_num_threads(2)
    monkeypatch.setattr(fast, "busy_cores", lambda: 64)
    for purpose in ("train", "sample"):
        path = choose_path("cpu", purpose)
        assert path.threads == 1 and "cores busy" in path.reason and "1 thread" in path.description
    monkeypatch.setattr(fast, "busy_cores", lambda: 0)  # the machine calms down: no second decision
    assert choose_path("cpu", "sample").threads == 1
    fast.process_threads.cache_clear()
    assert choose_path("cpu", "train").threads == 2 and "2 threads" in choose_path("cpu").description
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # grading: eager, on the process's count
    graded = choose_path("cpu", "sample")
    assert graded.threads == 2 and graded.is_eager and "nbgrader" in graded.reason
    monkeypatch.setenv("COURSE_EAGER", "1")  # plain eager means plain eager
    assert choose_path("cpu").is_eager and choose_path("cpu").threads is None
    assert fit_to_device(FastPath("cpu", threads=1), "cuda").threads is None  # only the CPU's
    torch.set_num_threads(1)


def test_course_threads_sets_the_count(monkeypatch):
    monkeypatch.setattr(fast, "busy_cores", lambda: 64)
    monkeypatch.setenv("COURSE_THREADS", "3")
    path = choose_path("cpu", "train")
    assert path.threads == 3 and "3 threads" in path.description
    before = torch.get_num_threads()
    seen = []
    with fast.training(torch.nn.Linear(2, 1), path) as run:
        seen.append(torch.get_num_threads())
        assert "3 threads" in run.description
    with fast.sampling(lambda x, t: x, "cpu", path):
        seen.append(torch.get_num_threads())
    assert seen == [3, 3] and torch.get_num_threads() == before
    for bad in ("0", "two"):
        fast.process_threads.cache_clear()
        monkeypatch.setenv("COURSE_THREADS", bad)
        with pytest.raises(ValueError, match="COURSE_THREADS must be a positive integer"):
            choose_path("cpu")


def test_busy_cores_reads_a_count():
    assert isinstance(_REAL_BUSY_CORES(samples=2, interval_s=0), int) and _REAL_BUSY_CORES(1, 0) >= 0


def test_one_thread_trains_like_eager(eager_losses):
    _, history = _train(FastPath("cpu", threads=1))
    assert "1 thread" in history.path
    _assert_trains_alike(history.losses, eager_losses, FP32_RTOL)


@pytest.mark.parametrize("setting", ["COURSE_EAGER", "NBGRADER_EXECUTION"])
def test_one_switch_falls_back_to_eager(monkeypatch, setting):
    monkeypatch.setenv(setting, "1")
    for device in ("cpu", "cuda"):
        for purpose in ("train", "sample"):
            assert choose_path(device, purpose).is_eager
    assert resolve_path(True, "cpu", "sample").is_eager  # the environment wins over fast=True
    assert choose_path("cpu", "sample", eager=False).inference_mode  # an explicit False wins


def test_eager_argument_and_bad_values():
    assert choose_path("cuda", eager=True).is_eager
    assert resolve_path(False, "cuda").is_eager
    with pytest.raises(ValueError, match="purpose"):
        choose_path("cpu", "predict")
    with pytest.raises(TypeError, match="fast must be"):
        resolve_path("yes", "cpu")


def test_cuda_path_compiles_only_runs_long_enough(monkeypatch):
    monkeypatch.setattr(fast, "can_compile", lambda device_type: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    long = choose_path("cuda", "train", steps=2_000)
    assert long.compile and long.cudagraphs and long.compile_mode == "reduce-overhead"
    assert long.channels_last and long.fused_adam and long.autocast_dtype == torch.bfloat16
    assert "CUDA graphs" in long.description and "bfloat16 autocast" in long.description
    short = choose_path("cuda", "train", steps=2)  # a graded run: compiling would cost more
    assert not short.compile and not short.cudagraphs and "too short" in short.reason
    sample = choose_path("cuda", "sample", steps=150)
    assert sample.inference_mode and not sample.fused_adam and sample.autocast_dtype == torch.bfloat16


def test_cuda_only_switches_are_dropped_on_the_cpu():
    wanted = FastPath("cuda", compile=True, cudagraphs=True, fused_adam=True)
    fitted = fit_to_device(wanted, "cpu")
    assert fitted.device_type == "cpu" and not fitted.cudagraphs and not fitted.fused_adam
    assert fitted.compile == fast.can_compile("cpu")
    assert "not available on cpu" in fitted.reason
    assert fit_to_device(FastPath("cpu", cudagraphs=True), "cpu").cudagraphs is False  # needs compile
    assert fit_to_device(choose_path("cpu", "sample"), "cpu") == choose_path("cpu", "sample")


# -- training on each path ----------------------------------------------------------------------
def test_default_training_on_cpu_records_its_path(eager_losses):
    from utils import path_probe

    path_probe.forget()
    model, history = _train(None)
    default = choose_path("cpu", steps=STEPS)
    if default.measure:  # a CPU with native bfloat16: the run names what it chose and why
        assert "timed here" in history.path
        _assert_trains_alike(history.losses, eager_losses, BF16_RTOL)
    else:
        assert history.path == default.description
        _assert_trains_alike(history.losses, eager_losses, FP32_RTOL)
    path_probe.forget()
    assert f"path {history.path}" in history.summary()
    assert all(p.is_contiguous() for p in model.parameters())  # weights back in NCHW


def test_channels_last_trains_like_eager_and_puts_the_weights_back(eager_losses):
    model, history = _train(FastPath("cpu", channels_last=True))
    assert "channels_last" in history.path
    _assert_trains_alike(history.losses, eager_losses, FP32_RTOL)
    assert all(p.is_contiguous() for p in model.parameters())


def test_bf16_autocast_trains_like_eager_within_bf16_precision(eager_losses):
    path = FastPath("cpu", autocast_dtype=torch.bfloat16)
    with fast.training(torch.nn.Conv2d(1, 2, 3), path) as run:  # really computes in bfloat16 here
        assert run.loss(lambda m, x: m(x), torch.randn(1, 1, 4, 4)).dtype == torch.bfloat16
    model, history = _train(path)
    assert "bfloat16 autocast" in history.path
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32
    _assert_trains_alike(history.losses, eager_losses, BF16_RTOL)


def test_a_measured_path_trains_exactly_like_the_path_it_chose(eager_losses):
    from dataclasses import replace

    from utils import path_probe

    path_probe.forget()
    model, history = _train(FastPath("cpu", measure=True))
    assert "timed here" in history.path and "fastest of" not in history.path
    (winner, best), = path_probe._CHOSEN.values()
    assert len(best) == 4 and winner.description in history.path
    # Timing ran on a copy with the random state restored: the run is the chosen path's own run.
    _, again = _train(replace(winner, reason=""))
    assert again.losses == history.losses
    _assert_trains_alike(history.losses, eager_losses, BF16_RTOL)
    assert all(p.is_contiguous() and p.dtype == torch.float32 for p in model.parameters())
    path_probe.forget()


def test_measured_sampling_stays_close_to_eager(small_model):
    from utils import path_probe

    path_probe.forget()
    ddpm = DDPM(T=SMALL["T"])
    eager = ddpm.sample(small_model, (4, 1, 8, 8), generator=torch.Generator().manual_seed(5), fast=False)
    with fast.sampling(small_model, "cpu", FastPath("cpu", inference_mode=True, measure=True)) as predict:
        predict(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
        assert not predict.path.measure and "timed here" in predict.path.reason
    measured = ddpm.sample(small_model, (4, 1, 8, 8), generator=torch.Generator().manual_seed(5),
                           fast=FastPath("cpu", inference_mode=True, measure=True))
    assert measured.images.dtype == torch.float32 and not measured.images.is_inference()
    assert (measured.images - eager.images).abs().max() < 0.05 * eager.images.abs().max()
    assert all(p.is_contiguous() for p in small_model.parameters())
    path_probe.forget()


def test_norms_compute_in_float32_under_bf16_autocast_and_the_hooks_go_away():
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.GroupNorm(2, 4), torch.nn.GELU(),
                                torch.nn.Conv2d(4, 1, 3, padding=1))
    seen, after = [], []
    model[1].register_forward_hook(lambda layer, args, out: seen.append((args[0].dtype, out.dtype)))
    model[2].register_forward_hook(lambda layer, args, out: after.append(args[0].dtype))
    x = torch.randn(2, 2, 6, 6)
    with fast.training(model, FastPath("cpu", autocast_dtype=torch.bfloat16)) as run:
        assert run.loss(lambda m, x: m(x).sum(), x).dtype == torch.bfloat16  # convs: bf16
        with torch.autocast("cpu", dtype=torch.bfloat16):
            hooked = model[1](model[0](x))
    with fast.training(model, FastPath("cpu")) as run:
        run.loss(lambda m, x: m(x).sum(), x)
    # statistics in float32; what leaves the layer is bfloat16 under autocast (the next conv's dtype)
    assert seen == [(torch.float32, torch.float32)] * 3 and after == [torch.bfloat16, torch.float32]
    with torch.no_grad():
        exact = model[1](model[0](x))
    assert hooked.dtype == torch.bfloat16 and (hooked.float() - exact).abs().max() < 0.05 * exact.abs().max()
    assert not model[1]._forward_pre_hooks and len(model[1]._forward_hooks) == 1  # only the test's own left
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what CPU autocast alone does: GroupNorm in bf16
        assert model[1](model[0](torch.randn(2, 2, 6, 6))).dtype == torch.bfloat16


def test_norm_hooks_follow_the_job_and_the_device():
    """float32 statistics and a bfloat16 output when training on a CPU; nothing when sampling on a CPU
    (the kernels' forward values are as close to float32 without them); the input cast alone on CUDA."""
    from utils.path_apply import _norm_hooks

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.GroupNorm(2, 4))
    bf16 = torch.bfloat16

    def hooks(path):
        handles = _norm_hooks(model, path)
        counts = len(model[1]._forward_pre_hooks), len(model[1]._forward_hooks)
        for handle in handles:
            handle.remove()
        return counts

    assert hooks(FastPath("cpu", autocast_dtype=bf16)) == (1, 1)
    assert hooks(FastPath("cpu", autocast_dtype=bf16, inference_mode=True)) == (0, 0)
    assert hooks(FastPath("cuda", autocast_dtype=bf16)) == (1, 0)
    assert hooks(FastPath("cpu")) == (0, 0)


# Compiling forward and backward: 3 min cold on 2 busy cores, 11 s from Inductor's disk cache.
@pytest.mark.slow
@pytest.mark.skipif(not fast.can_compile("cpu"), reason="torch.compile needs a C compiler on the CPU")
def test_compiled_training_matches_eager(eager_losses):
    # Asked for CUDA graphs on a CPU: the guard drops them and compiles for the CPU instead.
    model, history = _train(FastPath("cpu", compile=True, cudagraphs=True))
    assert "torch.compile" in history.path and "CUDA graphs" not in history.path
    _assert_trains_alike(history.losses, eager_losses, FP32_RTOL)
    assert not any(k.startswith("_orig_mod") for k in model.state_dict())  # plain module keys


def test_reading_losses_back_in_groups_keeps_the_history(tmp_path):
    def run(sync_every):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        xs = [torch.randn(8, 3) for _ in range(5)]
        return train(model, lambda m, x: (m(x) - x.sum(1, keepdim=True)).pow(2).mean(), xs, epochs=2,
                     lr=0.05, max_steps=7, progress=False, sync_every=sync_every)

    one, grouped = run(1), run(3)
    assert grouped.losses == one.losses and grouped.steps == 7 and grouped.completed
    assert grouped.epoch_losses == pytest.approx(one.epoch_losses, rel=1e-12)


# -- sampling -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return UNet(**SMALL).eval()


def test_fast_sampling_gives_eager_images(small_model):
    from utils import path_probe

    path_probe.forget()
    ddpm = DDPM(T=SMALL["T"])
    eager = ddpm.sample(small_model, (6, 1, 8, 8), generator=torch.Generator().manual_seed(3),
                        n_frames=4, fast=False)
    quick = ddpm.sample(small_model, (6, 1, 8, 8), generator=torch.Generator().manual_seed(3), n_frames=4)
    path_probe.forget()
    # On a CPU with native bfloat16 the path is timed and bfloat16 autocast may win: each predicted noise
    # is then off by up to 2^-8 of its size, and the 20 reverse steps add up at most 20 such errors
    # (each scaled by beta_t / sqrt(1 - alpha_bar_t) < 1): 0.08. Float32 paths agree to 1e-4.
    atol = 0.08 if choose_path("cpu", "sample").measure else 1e-4
    torch.testing.assert_close(quick.images, eager.images, rtol=0, atol=atol)
    torch.testing.assert_close(quick.frames, eager.frames, rtol=0, atol=atol)
    assert quick.timesteps == eager.timesteps and torch.equal(quick.frames[-1], quick.images)
    # Made under inference_mode, handed back as ordinary tensors that autograd can use.
    assert not quick.images.is_inference() and not quick.frames.is_inference()
    quick.images.requires_grad_()
    assert all(p.is_contiguous() for p in small_model.parameters())  # weights back in NCHW


def test_inference_mode_alone_is_bit_identical(small_model):
    ddpm = DDPM(T=SMALL["T"])
    eager = ddpm.sample(small_model, (2, 1, 8, 8), generator=torch.Generator().manual_seed(4), fast=False)
    path = FastPath("cpu", inference_mode=True)
    quick = ddpm.sample(small_model, (2, 1, 8, 8), generator=torch.Generator().manual_seed(4), fast=path)
    assert torch.equal(quick.images, eager.images)


def test_fast_sampling_of_a_function_and_a_training_module():
    ddpm = DDPM(T=5)
    trace = ddpm.sample(lambda x, t: 0.1 * x, (2, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    plain = ddpm.sample(lambda x, t: 0.1 * x, (2, 1, 4, 4), generator=torch.Generator().manual_seed(0),
                        fast=False)
    assert torch.equal(trace.images, plain.images)
    model = _ConvNoise().train()
    ddpm.sample(model, (1, 1, 4, 4))
    assert model.training and model.conv.weight.is_contiguous()
    with pytest.raises(ValueError, match="e_t has shape"):
        ddpm.sample(lambda x, t: x[:, :, :2], (1, 1, 4, 4))


def test_bf16_sampling_stays_close(small_model):
    ddpm = DDPM(T=SMALL["T"])
    eager = ddpm.sample(small_model, (4, 1, 8, 8), generator=torch.Generator().manual_seed(5), fast=False)
    bf16 = ddpm.sample(small_model, (4, 1, 8, 8), generator=torch.Generator().manual_seed(5),
                       fast=FastPath("cpu", inference_mode=True, autocast_dtype=torch.bfloat16))
    assert bf16.images.dtype == torch.float32
    assert (bf16.images - eager.images).abs().max() < 0.05 * eager.images.abs().max()


class _ConvNoise(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, t):
        return self.conv(x)
