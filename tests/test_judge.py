"""The judge of notebook 06 and its verdict, without training a diffusion model.

The judge is trained once per session on the test data (the 900-image sample when present; see
assessment_support.py). Stand-ins for a model's samples: real held-out images must pass, replayed
training images must be flagged as copies, noise and one image repeated must fail.
"""
from __future__ import annotations

import math
import re
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from assessment_support import ensure_judge
from conftest import report
from utils import judge
from utils.data import fashion_mnist_tensors

PER_CLASS = judge.SETUP.n_per_class


@pytest.fixture(scope="module")
def trained():
    folder = ensure_judge(stand_in=False)
    net, calibration = judge.load_judge(folder)
    train = fashion_mnist_tensors(img_size=28, split="train")
    heldout = fashion_mnist_tensors(img_size=28, split="test")
    return net, calibration, train, heldout


def per_class(images, labels, n):
    """n images of each class, classes in order; mirrored copies are added when a class has fewer."""
    out = []
    for k in range(10):
        pool = images[labels == k]
        pool = torch.cat([pool, pool.flip(-1)])
        out.append(pool.repeat(-(-n // len(pool)), 1, 1, 1)[:n])
    return torch.cat(out), judge.requested_classes(n)


def test_calibration_is_measured(trained):
    net, cal, train, heldout = trained
    lo, hi = judge.wilson_interval(round(cal.accuracy * cal.n_heldout), cal.n_heldout)
    report(f"test judge on {cal.n_train} sample images: {cal.accuracy:.0%} right on {cal.n_heldout} held-out "
           f"(95% {lo:.0%}-{hi:.0%}); copy threshold {cal.copy_threshold:.3f}; FID real/real {cal.fid_real:.1f}")
    assert cal.n_heldout == len(heldout) and cal.n_train == len(train)
    right = (judge.predict(net, heldout.images) == heldout.labels).float().mean().item()
    assert cal.accuracy == pytest.approx(right)
    assert cal.accuracy > 0.5, "a judge this weak cannot calibrate anything"
    near = judge.nearest_train_distance(heldout.images, train.images)
    assert (near < cal.copy_threshold).float().mean() <= 0.02  # about COPY_QUANTILE of real images
    assert len(cal.class_spread) == 10 and min(cal.class_spread) > 0.1


def test_real_heldout_images_pass(trained):
    net, cal, train, heldout = trained
    images, asked = per_class(heldout.images, heldout.labels, PER_CLASS)
    verdict = judge.assess(net, cal, images, asked, train.images, heldout.images)
    report("verdict on real held-out images: " + verdict.report().splitlines()[-1])
    assert verdict.passed and verdict.collapsed == []
    # By construction about 1% of real held-out images (and their mirrors) fall below the copy threshold.
    assert verdict.copies.float().mean() <= 0.03
    assert verdict.fid is not None and verdict.fid >= 0


def test_replayed_training_images_are_copies(trained):
    net, cal, train, heldout = trained
    images, asked = per_class(train.images, train.labels, PER_CLASS)
    verdict = judge.assess(net, cal, images, asked, train.images)
    assert verdict.copies.all(), "replayed (and mirrored) training images must all be flagged as copies"
    assert verdict.correct.float().mean() > 0.8  # the judge reads them well: only the copy check stops them
    assert verdict.successes == 0 and not verdict.passed


def test_noise_fails(trained):
    net, cal, train, heldout = trained
    asked = judge.requested_classes(PER_CLASS)
    noise = torch.randn(len(asked), 1, 28, 28, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    verdict = judge.assess(net, cal, noise, asked, train.images, heldout.images)
    assert not verdict.passed and verdict.rate < 0.3
    assert verdict.fid > 10 * max(cal.fid_real, 1.0)


def test_one_image_repeated_fails(trained):
    net, cal, train, heldout = trained
    right = judge.predict(net, heldout.images) == heldout.labels
    pick = torch.stack([heldout.images[(heldout.labels == k) & right][0] for k in range(10)])
    images = pick.repeat_interleave(PER_CLASS, 0)
    asked = judge.requested_classes(PER_CLASS)
    verdict = judge.assess(net, cal, images, asked, train.images)
    assert verdict.correct.all(), "the judge reads each repeated image right ..."
    assert verdict.collapsed == list(range(10)) and verdict.successes == 0 and not verdict.passed  # ... yet it fails


def test_one_collapsed_class_costs_only_that_class(trained):
    net, cal, train, heldout = trained
    images, asked = per_class(heldout.images, heldout.labels, PER_CLASS)
    images[asked == 3] = images[asked == 3][0]
    verdict = judge.assess(net, cal, images, asked, train.images)
    assert verdict.collapsed == [3] and not verdict.success[asked == 3].any()
    assert verdict.success[asked != 3].sum() == (verdict.correct & ~verdict.copies)[asked != 3].sum()


def test_wilson_interval_known_values():
    # Reference values from the closed form (Wilson 1927), e.g. Newcombe (1998), Table I: 0/10 and 5/10 at 95%.
    assert judge.wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert judge.wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert judge.wilson_interval(10, 10)[1] == pytest.approx(1.0)
    lo, hi = judge.wilson_interval(144, 200)
    assert lo < 0.72 < hi and hi - lo < 0.13
    with pytest.raises(ValueError):
        judge.wilson_interval(3, 2)


def test_pass_probability_is_the_binomial_tail():
    def tail(p, n, need):
        return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(need, n + 1))

    # The original rule: at least 95% of 50 images (48). A model truly 95% right passes about half the time.
    assert judge.pass_probability(0.95, 50, 0.95) == pytest.approx(tail(0.95, 50, 48), rel=1e-9)
    assert 0.45 < judge.pass_probability(0.95, 50, 0.95) < 0.6
    assert judge.pass_probability(0.77, 200, 0.72) == pytest.approx(tail(0.77, 200, 144), rel=1e-9)
    assert judge.pass_probability(0.77, 200, 0.72) > judge.pass_probability(0.77, 50, 0.72)
    assert judge.pass_probability(1.0, 200, 0.72) == 1.0 and judge.pass_probability(0.0, 200, 0.72) == 0.0


def test_fid_uses_the_judge_and_torchmetrics(trained):
    net, cal, train, heldout = trained
    assert judge.fid(net, heldout.images, heldout.images) == pytest.approx(0.0, abs=1e-2)
    same = judge.fid(net, train.images[:200], heldout.images)
    blurred = torch.nn.functional.avg_pool2d(train.images[:200], 3, 1, 1)
    assert judge.fid(net, blurred, heldout.images) > same
    small = fashion_mnist_tensors(img_size=16, split="test").images  # 02-04's size: resized for the judge
    assert judge.fid(net, small[:50], small[50:]) >= 0
    with pytest.raises(ValueError, match="one size"):
        judge.fid(net, small, heldout.images)


def test_fid_table_of_16x16_samples(trained, tmp_path, capsys):
    """The table of notebooks 02-04: real training images score best, a blur and noise worse, all drawn at
    random to one size (the data files are sorted by class); without a judge it says how to make one."""
    net, _cal, _train, _heldout = trained
    heldout = fashion_mnist_tensors(img_size=16, split="test").images
    reference = fashion_mnist_tensors(img_size=16, split="train").images
    blurred = F.avg_pool2d(reference[:300], 3, stride=1, padding=1)
    noise = torch.randn(80, 1, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    table = judge.fid_table({"blurred": blurred, "noise": noise}, heldout, reference,
                            folder=ensure_judge(stand_in=False))
    printed = capsys.readouterr().out
    n = min(80, len(heldout))
    assert f"against {n} real held-out images at 16x16" in printed and "noise" in printed
    assert list(table) == ["real images (not the held-out ones)", "blurred", "noise"]
    real = table["real images (not the held-out ones)"]
    pick = torch.Generator().manual_seed(0)  # the same draws as fid_table's: held-out first, then each row
    drawn_heldout = heldout[torch.randperm(len(heldout), generator=pick)[:n]]
    drawn_reference = reference[torch.randperm(len(reference), generator=pick)[:n]]
    assert real == pytest.approx(judge.fid(net, drawn_reference, drawn_heldout), rel=1e-4)
    assert real < table["blurred"] < table["noise"]
    assert judge.fid_table({"noise": noise}, heldout, reference, folder=tmp_path) is None
    skipped = capsys.readouterr().out
    assert "judge-feature FID skipped" in skipped and "make judge" in skipped

    folder = ensure_judge(stand_in=False)
    loud = judge.fid_table({"noise x 1e6": noise * 1e6}, heldout, reference, folder=folder)
    signs = judge.fid_table({"signs of the noise": noise.sign()}, heldout, reference, folder=folder)
    assert loud["noise x 1e6"] == pytest.approx(signs["signs of the noise"], rel=1e-4), "samples are clamped to [-1, 1]"
    broken = noise.clone()
    broken[0, 0, 0, 0] = float("nan")
    capsys.readouterr()
    for bad, message in (({"diverged": broken}, "diverged: NaN or infinite"),
                         ({"one": noise[:1]}, "one: FID needs at least two images, got 1"),
                         ({"no channel": noise[:, 0]}, "no channel: expected [N, 1, H, W]"),
                         ({"28x28": torch.zeros(4, 1, 28, 28)}, "28x28: expected [N, 1, H, W] images of the held-out size"),
                         ({"real images (not the held-out ones)": noise}, "names the reference row")):
        with pytest.raises(ValueError, match=re.escape(message)):
            judge.fid_table(bad, heldout, reference, folder=folder)
        assert capsys.readouterr().out == "", "a bad set is refused before anything is printed"
    with pytest.raises(ValueError, match="NaN or infinite"):
        judge.fid(net, broken, heldout)


def test_fid_refuses_images_not_in_minus_one_to_one(tmp_path, capsys):
    """Lightning-AI/torchmetrics#1244: images in [0, 1] or 0-255 scored against real ones in [-1, 1] give a
    number, not an error. Refused before any feature is computed (an untrained judge suffices), naming the range."""
    net = judge.Judge().eval()
    unit = torch.rand(40, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    unit[0, 0, 0, :2] = torch.tensor([0.0, 1.0])
    real = unit * 2 - 1
    cases = {"in [0, 1]": (unit, "pixel values from 0 to 1, none below 0"),
             "0-255 floats": (unit * 255, "pixel values from 0 to 255, none below 0"),
             "uint8": ((unit * 255).round().to(torch.uint8), "integer pixels (torch.uint8, values 0 to 255)")}
    for name, (images, message) in cases.items():
        with pytest.raises(ValueError, match=re.escape(message) + ".*scale them to \\[-1, 1\\]"):
            judge.fid(net, images, real)
        with pytest.raises(ValueError, match=re.escape(message)):
            judge.fid(net, real, images)  # the real side too
        with pytest.raises(ValueError, match=re.escape(f"{name}: {message}")):
            judge.fid_table({name: images}, real, real, folder=tmp_path)
        assert capsys.readouterr().out == "", "a bad set is refused before anything is printed"
    with pytest.raises(ValueError, match=re.escape("from -1.5 to 1.5, outside [-1, 1]")):
        judge.fid(net, real.clamp(-0.5, 0.5) * 3, real)
    # float rounding just past the range is not an error; fid_table clamps a sampler's overshoot
    assert math.isfinite(judge.fid(net, real * (1 + 5e-4), real))
    assert judge.fid_table({"overshoot": real * 1.2}, real, real, folder=tmp_path) is None  # no judge there: skipped


def test_assess_rejects_bad_input(trained):
    net, cal, train, heldout = trained
    asked = judge.requested_classes(2)
    with pytest.raises(ValueError, match="28, 28"):
        judge.assess(net, cal, torch.zeros(20, 1, 16, 16), asked, train.images)
    with pytest.raises(ValueError, match="NaN"):
        judge.assess(net, cal, torch.full((20, 1, 28, 28), float("nan")), asked, train.images)


def test_save_load_and_missing_judge(trained, tmp_path):
    net, cal, _, _ = trained
    path, checksum = judge.save_judge(net, cal, tmp_path)
    assert checksum == judge.sha256(path) and len(checksum) == 64
    again, cal2 = judge.load_judge(tmp_path)
    assert cal2 == cal
    x = torch.zeros(2, 1, 28, 28)
    assert torch.equal(again(x), net(x))
    with pytest.raises(judge.JudgeNotFoundError, match="make judge"):
        judge.load_judge(tmp_path / "nothing")


def test_judge_folder_ignores_later_changes_to_the_environment(monkeypatch):
    before = judge.judge_folder()
    monkeypatch.setenv("COURSE_JUDGE", "/somewhere/else")
    if os.path.exists("/proc/self/environ"):
        assert judge.judge_folder() == before  # a notebook cannot point grading at its own judge


def test_load_submission_says_why(tmp_path):
    with pytest.raises(judge.SubmissionError, match="no weights"):
        judge.load_submission(tmp_path / "06_model.pt")
    good = judge.assessment_unet()
    torch.save(good.state_dict(), tmp_path / "good.pt")
    loaded = judge.load_submission(tmp_path / "good.pt")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), good.state_dict().values()))
    torch.save(good, tmp_path / "module.pt")  # a whole pickled module, not a state dict
    with pytest.raises(judge.SubmissionError, match="weights_only"):
        judge.load_submission(tmp_path / "module.pt")
    from utils.unet_utils import UNet

    torch.save(UNet(T=50, img_size=16, down_chs=(16, 32, 32), c_embed_dim=10).state_dict(), tmp_path / "16.pt")
    with pytest.raises(judge.SubmissionError, match="does not fit"):
        judge.load_submission(tmp_path / "16.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(judge.SubmissionError, match="could not be loaded"):
        judge.load_submission(tmp_path / "junk.pt")


def test_load_submission_strips_a_wrapper_prefix_every_key_carries(tmp_path, capsys):
    """rasbt/LLMs-from-scratch#580, pytorch/pytorch#3805: weights saved through torch.compile or DataParallel."""
    good = judge.assessment_unet()
    wrapped = {"torch.compile": torch.compile(good), "DataParallel": nn.DataParallel(good),
               "DataParallel of a compiled model": nn.DataParallel(torch.compile(good))}
    for how, model in wrapped.items():
        torch.save(model.state_dict(), tmp_path / "06_model.pt")
        loaded = judge.load_submission(tmp_path / "06_model.pt")
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), good.state_dict().values())), how
        said = capsys.readouterr().out
        assert "06_model.pt: every key carried the prefix" in said and "loaded without it" in said, how
        assert ("'_orig_mod.' (torch.compile)" in said) == ("compile" in how), how
        assert ("'module.' (DataParallel" in said) == ("DataParallel" in how), how


def test_load_submission_misfit_is_one_short_line(tmp_path):
    """A prefix on some keys only, or another architecture: what to save and a few keys, not a dump of them all."""
    from utils.unet_utils import UNet

    state = judge.assessment_unet().state_dict()
    some = {("module." + k if i % 2 else k): v for i, (k, v) in enumerate(state.items())}
    other = UNet(T=50, img_size=16, down_chs=(16, 32, 64), c_embed_dim=10).state_dict()
    for name, saved, counted in (("some.pt", some, "missing"), ("other.pt", other, "of another shape")):
        torch.save(saved, tmp_path / name)
        with pytest.raises(judge.SubmissionError) as caught:
            judge.load_submission(tmp_path / name)
        message = str(caught.value)
        assert "\n" not in message and len(message) < 600, message
        assert "does not fit" in message and counted in message and "torch.save(model.state_dict(), path)" in message


def test_generate_samples_with_the_course_sampler(tmp_path):
    from utils.ddpm_utils import DDPM

    torch.manual_seed(0)
    model = judge.assessment_unet()
    asked = torch.tensor([1, 8])
    a = judge.generate(model, DDPM(3, 1e-4, 0.2), asked, 1.0, seed=6, folder=tmp_path, progress=False)
    b = judge.generate(model, DDPM(3, 1e-4, 0.2), asked, 1.0, seed=6, folder=tmp_path, progress=False)
    assert a.shape == (2, 1, 28, 28) and torch.equal(a, b) and a.abs().max() <= 1


def test_make_judge_entry_point(tmp_path, capsys):
    assert judge.main(["--out", str(tmp_path), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "SHA-256 " + judge.sha256(tmp_path / judge.JUDGE_FILE) in out and "held-out" in out
