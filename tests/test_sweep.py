"""Sweep ranking and checkpoint choice are NaN-safe; the search space and trial list are checked up front."""

import json
import math
import os
import sys

import pytest
import ray
from ray import tune

from rlkd.config import ConfigError, SweepConfig, load_config
from rlkd.sweep import (
    CHECKPOINT_PATH_KEY,
    OBJECTIVE,
    best_report,
    objective,
    summarise_trials,
    trial_config,
    trial_overrides,
    tune_config,
    write_sweep_outputs,
)
from dataclasses import asdict

METRIC = "macro_f1/worst_lang"
SERIES = {"nan-first": [math.nan, 0.41, 0.55], "all-nan": [math.nan, math.nan, math.nan], "steady": [0.2, 0.3, 0.35]}


def test_objective_puts_nan_last():
    assert objective(math.nan, "max") < objective(0.0, "max")
    assert objective(math.inf, "min") > objective(5.0, "min")
    assert objective(0.41, "max") == 0.41


def test_best_report_skips_nan():
    reports = [{METRIC: math.nan, "step": 1}, {METRIC: 0.41, "step": 2}, {METRIC: 0.55, "step": 3}]

    assert best_report(reports, METRIC, "max")["step"] == 3
    assert best_report(reports, METRIC, "min")["step"] == 2
    assert best_report([{METRIC: math.nan}], METRIC, "max") is None


def _series_trainable(config):
    for step, value in enumerate(SERIES[config["series"]], start=1):
        directory = tune.get_context().get_trial_dir() + f"/checkpoint_{step}"
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "value.json"), "w") as handle:
            json.dump({"value": value}, handle)
        tune.report({METRIC: value, OBJECTIVE: objective(value, "max"), "step": step, "total_steps": 3,
                     CHECKPOINT_PATH_KEY: directory})


@pytest.fixture(scope="module")
def local_ray():
    # Workers cannot import this test module, so the trainable travels by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.mark.timeout(300)
def test_nan_first_report_best_checkpoint(local_ray, tmp_path):
    sweep = SweepConfig(grace_period=2)
    tuner = tune.Tuner(
        _series_trainable,
        param_space={"series": tune.grid_search(list(SERIES))},
        tune_config=tune_config(sweep, max_concurrent_trials=1),
        run_config=tune.RunConfig(name="nan", storage_path=str(tmp_path), verbose=0),
    )

    table = summarise_trials(tuner.fit(), sweep, [])

    assert table.iloc[0]["config:series"] == "nan-first"
    assert table.iloc[0][f"best {METRIC}"] == pytest.approx(0.55)
    with open(table.iloc[0]["best checkpoint"] + "/value.json") as handle:
        assert json.load(handle)["value"] == pytest.approx(0.55)
    assert table.iloc[-1]["config:series"] == "all-nan"
    assert math.isnan(table.iloc[-1][f"best {METRIC}"])
    write_sweep_outputs(table, sweep, tmp_path)
    summary = (tmp_path / "sweep.md").read_text()
    assert "- series: nan-first" in summary
    assert (tmp_path / "sweep.csv").read_text().count("\n") == 4


def test_default_sweep_is_one_trial_per_reward_design():
    space, trials = trial_overrides(SweepConfig())

    designs = [trial["controller.reward_design"] for trial in trials]
    assert designs == ["macro_f1_gain", "worst_lang_f1_gain", "balanced", "gain_minus_cost"]
    assert list(space) == ["trial"]


def test_trial_config_applies_space_and_trial():
    base = asdict(load_config())
    trials = [{"controller.reward_design": "balanced", "controller.estimator": "lookahead"}]

    config = trial_config(base, {"controller.group_size": 8, "trial": 0}, trials)

    assert config.controller.group_size == 8
    assert config.controller.reward_design == "balanced"
    assert config.controller.estimator == "lookahead"


@pytest.mark.parametrize(
    "override, field",
    [
        ("sweep.search_space={'controller.colour': {'grid': [1]}}", "controller.colour in sweep.search_space"),
        ("sweep.search_space={'controller.group_size': {'normal': [1, 2]}}", "sweep.search_space.controller.group_size"),
        ("sweep.search_space={'controller.learning_rate': {'loguniform': [0, 1]}}",
         "sweep.search_space.controller.learning_rate.loguniform"),
        ("sweep.mode=maximum", "sweep.mode"),
        ("sweep.method=none", "sweep.method"),
        ("sweep.reduction_factor=1", "sweep.reduction_factor"),
    ],
)
def test_invalid_sweep_config_names_the_field(override, field):
    with pytest.raises(ConfigError) as raised:
        load_config(overrides=[override])

    assert field in str(raised.value)


def test_bad_grid_value_fails_before_any_trial():
    from rlkd.sweep import _check_trials

    config = load_config(overrides=["sweep.search_space={'controller.group_size': {'grid': [4, 1]}}"])

    with pytest.raises(ConfigError, match="controller.group_size"):
        _check_trials(asdict(config), config.sweep, [])


def test_best_report_prefers_the_latest_on_ties():
    reports = [{METRIC: 0.5, "step": 1}, {METRIC: 0.5, "step": 2}, {METRIC: 0.4, "step": 3}]

    assert best_report(reports, METRIC, "max")["step"] == 2


def test_tied_trials_keep_trial_order():
    import pandas as pd
    from types import SimpleNamespace

    def result(trial_id: str, value: float):
        reports = pd.DataFrame([{METRIC: value, "step": 4, "total_steps": 4}])
        return SimpleNamespace(config={"series": trial_id}, metrics_dataframe=reports,
                               metrics={"trial_id": trial_id, "time_total_s": 30.0}, path=None, error=None)

    grid = [result("t3", 0.5), result("t1", 0.5), result("t2", math.nan), result("t0", 0.5)]

    table = summarise_trials(grid, SweepConfig(), [])

    assert table["trial_id"].tolist() == ["t0", "t1", "t3", "t2"]
    assert table["status"].tolist() == ["completed"] * 4


def test_misspelt_search_field_suggests_the_name():
    with pytest.raises(ConfigError, match="did you mean controller.kl_beta"):
        load_config(overrides=["sweep.search_space={'controller.klbeta': {'grid': [0.0, 0.1]}}"])
