"""The full FashionMNIST as a student's machine finds it offline: the Debian/Ubuntu package
dataset-fashion-mnist, read in place (skipped where the package is not installed)."""
import pytest
import torch

from utils import data as course_data

SYSTEM = course_data.SYSTEM_DATA_DIRS[0]
pytestmark = pytest.mark.skipif(not SYSTEM.is_dir(), reason=f"no {SYSTEM}: apt-get install dataset-fashion-mnist")


@pytest.fixture
def no_course_data(monkeypatch, tmp_path):
    """The course's own folders hold no FashionMNIST, as on a fresh checkout."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(course_data, "COURSE_ROOT", tmp_path / "course")


def test_the_package_gives_all_70000_images_in_their_splits(no_course_data):
    assert course_data.find_raw() == SYSTEM
    every = course_data.fashion_mnist_tensors(img_size=16, download=False)
    train = course_data.fashion_mnist_tensors(img_size=28, split="train", download=False)
    test = course_data.fashion_mnist_tensors(img_size=28, split="test", download=False)
    assert (len(every), len(train), len(test)) == (70_000, 60_000, 10_000)
    assert torch.bincount(every.labels).tolist() == [7_000] * 10
    assert every.images.min() == -1 and 0.99 < every.images.max() <= 1  # resized: the brightest pixel blurs a little
    # the splits are the official ones, in order: the joined set is train then test
    assert torch.equal(every.labels[:60_000], train.labels) and torch.equal(every.labels[60_000:], test.labels)
