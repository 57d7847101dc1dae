"""Fitting a run to the machine: the step count a time budget keeps, and train() keeping to it."""
import pytest
import torch

from utils.profiles import FAST_STEPS, PROFILES, train_plan
from utils.time_budget import StepLimit, TimeBudget, fitted_steps
from utils.training import train


def test_planned_steps_are_kept_when_they_fit():
    assert fitted_steps(1_500, 0.18, TimeBudget(330, 750)) == 1_500      # 270 s


def test_a_slow_machine_gets_as_many_steps_as_fit_rounded_down():
    assert fitted_steps(1_500, 0.40, TimeBudget(330, 500)) == 800        # 825 fit, rounded to 50


def test_the_floor_wins_over_the_budget():
    assert fitted_steps(1_500, 0.75, TimeBudget(330, 750)) == 750        # 440 fit, but 750 are needed
    assert fitted_steps(2_000, 1.9, TimeBudget(300, 2_000)) == 2_000
    assert fitted_steps(600, 5.0, TimeBudget(10, 750)) == 600            # never above the plan
    assert fitted_steps(600, 5.0, TimeBudget(10)) == 50                  # nor below one round of 50


def test_a_budget_must_be_positive():
    with pytest.raises(ValueError, match="positive number of seconds"):
        TimeBudget(0)


def test_the_limit_decides_after_warmup_and_timed_steps():
    limit = StepLimit(1_000, TimeBudget(100, 0, warmup=2, timed=4))
    for steps, now in ((1, 0.0), (2, 10.0), (5, 13.0)):
        limit.observe(steps, now)
        assert limit.undecided and limit.max_steps == 1_000
    limit.observe(6, 14.0)                                               # 4 timed steps in 4 s: 1 s a step
    assert not limit.undecided and limit.max_steps == 100
    assert "1000 ms a step" in limit.note and "training 100" in limit.note and "COURSE_TIME_BUDGET=off" in limit.note
    limit.observe(50, 1_000.0)                                           # decided once
    assert limit.max_steps == 100


def test_the_note_says_when_the_floor_goes_over_the_budget():
    limit = StepLimit(1_500, TimeBudget(330, 750, warmup=0, timed=10))
    limit.observe(0, 0.0)
    limit.observe(10, 7.5)
    assert limit.max_steps == 750 and "fewest that show" in limit.note and "over the budget" in limit.note


def test_a_fast_machine_gets_no_note():
    limit = StepLimit(1_500, TimeBudget(330, 750, warmup=0, timed=10))
    limit.observe(0, 0.0)
    limit.observe(10, 1.8)
    assert limit.max_steps == 1_500 and limit.note == ""


def _slow_run(monkeypatch, budget, checkpoint=None, max_steps=60, epochs=6):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    xs = [torch.randn(8, 3) for _ in range(10)]
    clock = {"t": 0.0}

    def loss_fn(m, x):          # a step that "takes" 0.5 s of a fake clock
        clock["t"] += 0.5
        return (m(x) - x.sum(1, keepdim=True)).pow(2).mean()

    monkeypatch.setattr("utils.time_budget.clock", lambda: clock["t"])
    return train(model, loss_fn, xs, epochs=epochs, lr=0.05, max_steps=max_steps, progress=False,
                 time_budget=budget, checkpoint=checkpoint)


def test_train_stops_at_the_fitted_steps_and_says_so(capsys, tmp_path, monkeypatch):
    history = _slow_run(monkeypatch, TimeBudget(25, 0, warmup=2, timed=4), tmp_path / "run.pt")  # 0.5 s a step: 50 fit
    assert history.steps == 50 and history.completed and history.step_limit == 50
    assert "training 50" in capsys.readouterr().out
    assert "of 60 planned: time budget" in history.summary()
    again = _slow_run(monkeypatch, TimeBudget(25, 0, warmup=2, timed=4), tmp_path / "run.pt")
    assert again.resumed_from_checkpoint and again.steps == 50


def test_train_without_a_budget_runs_every_step(monkeypatch):
    assert _slow_run(monkeypatch, None).steps == 60
    assert _slow_run(monkeypatch, TimeBudget(1_000, 0, warmup=2, timed=4)).steps == 60


def test_the_fast_profile_carries_each_budget_and_the_switch_turns_it_off(monkeypatch):
    monkeypatch.delenv("COURSE_TIME_BUDGET", raising=False)
    for notebook, size in FAST_STEPS.items():
        budget = train_plan(notebook, PROFILES["fast"]).time_budget
        assert (budget.seconds, budget.min_steps) == (size.seconds, size.min_steps)
        assert size.min_steps <= size.steps
        assert train_plan(notebook, PROFILES["grade"]).time_budget is None
        assert train_plan(notebook, PROFILES["full"]).time_budget is None
    monkeypatch.setenv("COURSE_TIME_BUDGET", "off")
    assert train_plan("03_Optimizations", PROFILES["fast"]).time_budget is None


def test_a_cut_stops_the_run_at_once(monkeypatch):
    history = _slow_run(monkeypatch, TimeBudget(0.5, 0, warmup=1, timed=2))   # decided at step 3: keep 50
    assert history.steps == 50
    limit = StepLimit(60, TimeBudget(1, 0, warmup=0, timed=2), steps_done=0)
    limit.observe(0, 0.0)
    limit.observe(70, 35.0)                                              # past any fit: keep what is done
    assert limit.max_steps == 70


def test_switching_the_budget_off_trains_the_steps_a_cut_left_out(monkeypatch, tmp_path):
    ckpt = tmp_path / "run.pt"
    assert _slow_run(monkeypatch, TimeBudget(25, 0, warmup=2, timed=4), ckpt).steps == 50
    again = _slow_run(monkeypatch, None, ckpt)                           # COURSE_TIME_BUDGET=off
    assert again.steps == 60 and again.completed and again.step_limit is None
    assert "planned" not in again.summary()


def test_a_resumed_run_times_its_own_steps_and_never_cuts_below_them(monkeypatch, tmp_path):
    ckpt, clock = tmp_path / "run.pt", {"t": 0.0, "calls": 0}
    monkeypatch.setattr("utils.time_budget.clock", lambda: clock["t"])
    xs = [torch.randn(8, 3) for _ in range(10)]

    def loss_fn(m, x):
        clock["t"] += 0.5
        clock["calls"] += 1
        if clock["calls"] == 125:
            raise KeyboardInterrupt  # the kernel dies in epoch 13; the checkpoint holds 12 epochs
        return (m(x) - x.sum(1, keepdim=True)).pow(2).mean()

    def run(budget):
        torch.manual_seed(0)
        return train(torch.nn.Linear(3, 1), loss_fn, xs, epochs=20, lr=0.05, max_steps=200, progress=False,
                     time_budget=budget, checkpoint=ckpt)

    with pytest.raises(KeyboardInterrupt):
        run(None)                                                        # saved before any budget decided
    resumed = run(TimeBudget(25, 0, warmup=2, timed=4))                  # 50 steps fit, 120 are done
    assert resumed.resumed_from_checkpoint and resumed.steps == 126      # decided after 2 + 4 of its own steps
    assert resumed.completed and resumed.step_limit == 126


def test_the_environment_switch(monkeypatch):
    for value in ("off", "OFF", "0", "false", "no"):
        monkeypatch.setenv("COURSE_TIME_BUDGET", value)
        assert train_plan("04_Classifier_Free_Diffusion", PROFILES["fast"]).time_budget is None
    monkeypatch.setenv("COURSE_TIME_BUDGET", "on")
    assert train_plan("04_Classifier_Free_Diffusion", PROFILES["fast"]).time_budget is not None
