"""What notebook 06 needs beside it in tests: a judge trained on the test data, and weights to hand in.

The full-data judge (``make judge``) cannot be trained offline, so tests train one on the data the
suite uses (``COURSE_DATA_DIR``, the 900-image sample when present) into the folder named by
``COURSE_JUDGE`` (a session temporary folder, see conftest.py). A model good enough to pass an honest
verdict takes far longer to train than a test may run, so the judge folder also gets the test-only
stand-in (``utils.judge.STAND_IN_FILE``): the verdict then judges real held-out images in place of
samples (and, since the sample has no third split of new images, does not look for copies of them among
the held-out images; ``utils.verdict`` says so in its report), and the weights handed in are an untrained
U-Net of the right shape (their loading is real). ``tests/utils/test_judge.py`` tests the verdict's logic itself
with stand-ins that must fail.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch

ASSESSMENT = "06_Assessment"
JUDGE_EPOCHS = 15  # on the 800 training images of the sample: about 100 steps


def judge_dir() -> Path:
    return Path(os.environ["COURSE_JUDGE"])


@lru_cache(maxsize=None)
def ensure_judge(stand_in: bool = True) -> Path:
    """Train (once per session) the test judge into $COURSE_JUDGE; add the stand-in file."""
    from utils import judge
    from utils.data import fashion_mnist_tensors

    folder = judge_dir()
    train = fashion_mnist_tensors(img_size=28, split="train")
    heldout = fashion_mnist_tensors(img_size=28, split="test")
    if not (folder / judge.JUDGE_FILE).exists():
        with _threads(1):
            net = judge.train_judge(train, epochs=JUDGE_EPOCHS, seed=0, progress=False)
            calibration = judge.calibrate(net, train, heldout, n_generated=judge.SETUP.n_per_class * 10,
                                          epochs=JUDGE_EPOCHS)
        judge.save_judge(net, calibration, folder)
    if stand_in:
        torch.save({"images": heldout.images, "labels": heldout.labels}, folder / judge.STAND_IN_FILE)
    return folder


@lru_cache(maxsize=None)
def untrained_weights() -> Path:
    """A state dict of the assessment's U-Net, untrained (seeded), in the judge's folder."""
    from utils import judge

    path = judge_dir().parent / "untrained" / judge.SETUP.weights
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(judge.assessment_unet().state_dict(), path)
    return path


def submission_files(assignment: str) -> list[Path]:
    """Files to hand in beside ``assignment``'s notebook (and the judge they are graded with)."""
    if assignment != ASSESSMENT:
        return []
    ensure_judge()
    return [untrained_weights()]


class _threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)
