"""Data loading (real files, offline errors), profiles and the training loop with checkpoints."""
import os
import socket
from pathlib import Path

import pytest
import torch

from utils import data as course_data
from utils.data import DataNotFoundError, TensorBatches, fashion_mnist, fashion_mnist_tensors
from utils.profiles import FAST_STEPS, ORIGINAL_PLANS, PROFILES, get_profile, train_plan
from utils.training import History, checkpoint_path, load_checkpoint, train


def test_data_dir_follows_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert course_data.data_dir() == tmp_path.resolve()
    monkeypatch.delenv("COURSE_DATA_DIR")
    assert course_data.data_dir() == (course_data.COURSE_ROOT / "data").resolve()


def test_both_routes_give_the_same_images(course_environment):
    tensors = fashion_mnist_tensors(img_size=16)
    dataset = fashion_mnist(img_size=16, flip=False)
    assert len(tensors) == len(dataset)
    assert tensors.images.shape[1:] == (1, 16, 16)
    assert tensors.images.min() >= -1 and tensors.images.max() <= 1
    for i in (0, len(dataset) - 1):
        image, label = dataset[i]
        assert image.shape == (1, 16, 16)
        assert int(label) == int(tensors.labels[i])
        # PIL's and torch's antialiased bilinear resize agree to within a few grey levels.
        assert (image - tensors.images[i]).abs().max() < 0.05


def test_train_and_test_sets_are_joined(course_environment):
    from torchvision import datasets
    n = sum(len(datasets.FashionMNIST(course_environment, train=s)) for s in (True, False))
    assert len(fashion_mnist_tensors()) == n


def test_missing_data_offline_says_where_to_put_it(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        fashion_mnist_tensors(root=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert "COURSE_DATA_DIR" in message and "train-images-idx3-ubyte" in message


def test_a_folder_with_only_the_official_gz_files_loads(tmp_path):
    from conftest import write_idx_fashion_mnist

    write_idx_fashion_mnist(tmp_path, n_train=12, n_test=4)  # exactly as the download leaves them
    data = fashion_mnist_tensors(img_size=8, root=tmp_path, download=False)
    assert data.images.shape == (16, 1, 8, 8) and data.labels.tolist()[:3] == [0, 1, 2]
    assert len(fashion_mnist(img_size=8, root=tmp_path, download=False)) == 16


def test_a_damaged_gz_file_says_what_to_do(tmp_path):
    from conftest import write_idx_fashion_mnist

    raw = write_idx_fashion_mnist(tmp_path, n_train=4, n_test=2) / "FashionMNIST" / "raw"
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataNotFoundError, match="could not read .*train-images-idx3-ubyte.gz"):
        fashion_mnist_tensors(root=tmp_path, download=False)


def _system_folder(tmp_path, monkeypatch, n_train=12, n_test=4):
    """A read-only folder laid out as the package dataset-fashion-mnist lays it out (the .gz files
    directly inside), standing in for the system one, with the course's own folders empty."""
    from conftest import write_idx_fashion_mnist

    raw = write_idx_fashion_mnist(tmp_path / "pkg", n_train=n_train, n_test=n_test) / "FashionMNIST" / "raw"
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    raw.rename(system)
    for f in system.iterdir():
        f.chmod(0o444)
    system.chmod(0o555)
    monkeypatch.setattr(course_data, "SYSTEM_DATA_DIRS", (system,))
    monkeypatch.setattr(course_data, "COURSE_ROOT", tmp_path / "course")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    return system


def test_the_system_dataset_is_found_and_nothing_is_written_there(tmp_path, monkeypatch):
    system = _system_folder(tmp_path, monkeypatch)
    before = sorted((f.name, f.stat().st_mtime_ns) for f in system.iterdir())
    assert course_data.find_raw() == system
    data = fashion_mnist_tensors(img_size=8, download=False)
    assert data.images.shape == (16, 1, 8, 8) and data.labels.tolist()[:3] == [0, 1, 2]
    assert len(fashion_mnist(img_size=8, download=False)) == 16
    assert sorted((f.name, f.stat().st_mtime_ns) for f in system.iterdir()) == before
    assert not (tmp_path / "empty").exists() and not (tmp_path / "course").exists()


def test_the_course_folder_comes_before_the_system_dataset(tmp_path, monkeypatch):
    from conftest import write_idx_fashion_mnist

    _system_folder(tmp_path, monkeypatch)
    write_idx_fashion_mnist(tmp_path / "empty", n_train=6, n_test=2)  # COURSE_DATA_DIR now holds data
    assert len(fashion_mnist_tensors(img_size=8, download=False)) == 8


def test_missing_data_names_the_package_and_the_download(tmp_path, monkeypatch):
    monkeypatch.setattr(course_data, "SYSTEM_DATA_DIRS", (tmp_path / "none",))
    monkeypatch.setattr(course_data, "COURSE_ROOT", tmp_path / "course")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataNotFoundError) as info:
        fashion_mnist_tensors(download=False)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    assert "internet" in str(info.value)


def test_failed_download_becomes_a_clear_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(DataNotFoundError, match="could not be downloaded"):
        fashion_mnist_tensors(root=tmp_path, download=True)


def test_tensor_batches_shuffle_flip_and_repeat():
    images = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4).repeat(5, 1, 1, 1)
    data = course_data.ImageTensors(images, torch.arange(10))
    batches = TensorBatches(data, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 2
    first = [(x.clone(), y.clone()) for x, y in batches]
    assert all(x.shape == (4, 1, 4, 4) for x, _ in first)
    flipped = sum(not torch.equal(x[i], images[y[i]]) for x, y in first for i in range(4))
    assert 0 < flipped < 8  # some images flipped, some not
    for x, y in first:
        for i in range(4):
            assert torch.equal(x[i], images[y[i]]) or torch.equal(x[i], images[y[i]].flip(-1))
    again = TensorBatches(data, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert len(TensorBatches(data, batch_size=4, drop_last=False)) == 3


def test_profiles(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert get_profile().name == "grade"
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    assert get_profile().name == "fast"
    assert get_profile("full").name == "full"
    monkeypatch.delenv("NBGRADER_EXECUTION")
    monkeypatch.delenv("COURSE_PROFILE")
    assert get_profile().name == ("full" if torch.cuda.is_available() else "fast")
    with pytest.raises(ValueError, match="unknown profile 'quick'"):
        get_profile("quick")
    full = train_plan("03_Optimizations", PROFILES["full"])
    assert (full.epochs, full.batch_size, full.lr, full.train_images) == (5, 128, 1e-3, None)
    grade = train_plan("03_Optimizations", PROFILES["grade"])
    assert grade.max_steps is not None and grade.train_images <= 512


@pytest.mark.parametrize("notebook", sorted(FAST_STEPS))
def test_the_fast_profile_trains_each_notebook_for_its_measured_steps(notebook):
    steps, batch = FAST_STEPS[notebook].steps, FAST_STEPS[notebook].batch
    plan = train_plan(notebook, PROFILES["fast"])
    assert (plan.max_steps, plan.batch_size, plan.train_images) == (steps, batch, None)
    # enough epochs to reach the steps on the smallest split a notebook trains on (06: 60,000)
    assert plan.epochs * (60_000 // batch) >= steps > (plan.epochs - 1) * (60_000 // batch) - 60_000 // batch
    assert plan.lr == ORIGINAL_PLANS[notebook].lr
    # the other profiles are untouched by it
    assert train_plan(notebook, PROFILES["full"]).max_steps is None
    assert train_plan(notebook, PROFILES["grade"]).max_steps == PROFILES["grade"].max_steps


def _tiny_run(checkpoint, epochs=2, max_steps=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    xs = [torch.randn(8, 3) for _ in range(4)]
    loss_fn = lambda m, x: (m(x) - x.sum(1, keepdim=True)).pow(2).mean()  # noqa: E731
    history = train(model, loss_fn, xs, epochs=epochs, lr=0.05, checkpoint=checkpoint,
                    max_steps=max_steps, progress=False)
    return model, history


def test_training_lowers_the_loss_and_checkpoints(tmp_path):
    ckpt = tmp_path / "run.pt"
    model, history = _tiny_run(ckpt, epochs=3)
    assert history.completed and history.steps == 12 and history.epochs_done == 3
    assert history.epoch_losses[-1] < history.epoch_losses[0]
    assert ckpt.exists() and not ckpt.with_suffix(".pt.tmp").exists()
    # A "kernel restart": the same call loads the finished run instead of training again.
    model2, again = _tiny_run(ckpt, epochs=3)
    assert again.resumed_from_checkpoint and again.steps == 12
    assert torch.equal(model.weight, model2.weight)
    restored = torch.nn.Linear(3, 1)
    assert load_checkpoint(restored, ckpt).losses == history.losses
    assert torch.equal(restored.weight, model.weight)


def test_training_resumes_an_interrupted_run(tmp_path):
    ckpt = tmp_path / "run.pt"
    _tiny_run(ckpt, epochs=1)  # as if the kernel died after epoch 1 of a 1-epoch config
    state = torch.load(ckpt, weights_only=True)
    state["history"]["completed"] = False
    state["config"]["epochs"] = 3
    torch.save(state, ckpt)
    _, history = _tiny_run(ckpt, epochs=3)
    assert history.epochs_done == 3 and history.steps == 12


def test_a_checkpoint_of_another_run_is_not_used(tmp_path):
    ckpt = tmp_path / "run.pt"
    _tiny_run(ckpt, epochs=1)
    with pytest.warns(UserWarning, match="different run"):
        _, history = _tiny_run(ckpt, epochs=2)
    assert not history.resumed_from_checkpoint and history.steps == 8


def _averaged_run(checkpoint, decay=0.9, epochs=2, keep_average=True):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True) if keep_average else None
    xs = [torch.randn(8, 3) for _ in range(4)]
    seen = []

    def loss_fn(m, x):  # records the weights each step starts from: the average must follow them
        seen.append([p.detach().clone() for p in model.parameters()])
        return (m(x) - x.sum(1, keepdim=True)).pow(2).mean()

    history = train(model, loss_fn, xs, epochs=epochs, lr=0.05, checkpoint=checkpoint, progress=False,
                    fast=False, averaged=averaged)
    seen.append([p.detach().clone() for p in model.parameters()])
    return model, averaged, history, seen


def test_averaged_weights_are_the_exponential_moving_average_of_every_step(tmp_path):
    decay = 0.9
    model, averaged, history, seen = _averaged_run(None, decay)
    assert history.steps == 8 and len(seen) == 9
    # AveragedModel's EMA: the first update copies the weights, each later one is
    # ema = decay * ema + (1 - decay) * weights
    expected = seen[1]
    for weights in seen[2:]:
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights)]
    for mine, want, last in zip(averaged.module.parameters(), expected, model.parameters()):
        torch.testing.assert_close(mine, want, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(mine, last)  # an average, not a copy of the last weights
    # BatchNorm's running statistics are averaged too (use_buffers=True), not left at their start
    assert not torch.equal(averaged.module[1].running_mean, torch.zeros(4))
    assert not averaged.training and not model.training  # both ready to sample from


def test_a_checkpoint_saved_before_averaging_existed_still_loads(tmp_path):
    ckpt = tmp_path / "run.pt"
    model, history = _tiny_run(ckpt, epochs=2)
    state = torch.load(ckpt, weights_only=True)
    assert "averaged" not in state["config"]  # a run without an average writes what older versions wrote
    _, again = _tiny_run(ckpt, epochs=2)
    assert again.resumed_from_checkpoint and again.steps == history.steps


def test_the_checkpoint_keeps_the_averaged_weights(tmp_path):
    ckpt = tmp_path / "run.pt"
    _, averaged, _, _ = _averaged_run(ckpt)
    _, again, history, seen = _averaged_run(ckpt)  # a kernel restart: loaded, not trained again
    assert history.resumed_from_checkpoint and len(seen) == 1
    for a, b in zip(averaged.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    # a checkpoint saved without an average is not used for a run that keeps one
    _averaged_run(tmp_path / "plain.pt", keep_average=False)
    with pytest.raises(ValueError, match="no averaged weights"):
        load_checkpoint(again.module, tmp_path / "plain.pt", averaged=again)
    with pytest.warns(UserWarning, match="different run"):
        _, _, history, _ = _averaged_run(tmp_path / "plain.pt")
    assert not history.resumed_from_checkpoint and history.steps == 8


def test_max_steps_stops_early(tmp_path):
    _, history = _tiny_run(None, epochs=5, max_steps=3)
    assert history.steps == 3 and history.completed


def test_checkpoint_path(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    assert checkpoint_path("unet", PROFILES["fast"]) == tmp_path / "unet-fast.pt"
    assert checkpoint_path("unet", PROFILES["grade"]) is None
    assert History().summary() == "no training steps yet"


def test_a_checkpoint_without_a_recorded_path_still_loads(tmp_path):
    ckpt = tmp_path / "run.pt"
    _, history = _tiny_run(ckpt, epochs=1)
    assert "eager float32" in history.path or "thread" in history.path
    state = torch.load(ckpt, weights_only=True)
    del state["history"]["path"]  # as written before History recorded the path
    torch.save(state, ckpt)
    loaded = load_checkpoint(torch.nn.Linear(3, 1), ckpt)
    assert loaded.path == "" and loaded.steps == 4 and "path" not in loaded.summary()


def test_train_can_be_forced_eager(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_EAGER", "1")
    _, history = _tiny_run(None, epochs=1)
    assert history.path == "cpu: eager float32 (COURSE_EAGER=1)"


def test_eval_mode_restores_training_even_after_an_error():
    from utils.runtime import eval_mode

    net = torch.nn.BatchNorm2d(2).train()
    with pytest.raises(RuntimeError):
        with eval_mode(net):
            assert not net.training
            raise RuntimeError("boom")
    assert net.training
    with eval_mode(net.eval()):
        pass
    assert not net.training  # a model already in eval mode stays there
    with eval_mode(lambda x: x) as f:  # plain functions pass through
        assert f(3) == 3
