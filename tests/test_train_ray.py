"""Ray Train runs on synthetic data: two CPU workers, a tiny student, a few steps."""

import math
import time

import numpy as np
import pytest
import ray

from rlkd.config import ControllerConfig, ScalingConfig
from rlkd.constants import LANGS
from rlkd.control.controller import start_controller
from rlkd.models import build_student
from rlkd.train.encoding import EncodedSplit
from rlkd.train.loop import LoopSettings
from rlkd.train.runner import TrainingError, fit
from rlkd.train.step import LossSettings

pytestmark = pytest.mark.timeout(300)

VOCAB = 64
STUDENT = {
    "vocab_size": VOCAB, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
    "intermediate_size": 32, "pad_token_id": 0, "max_position_embeddings": 64, "num_labels": 3,
}


@pytest.fixture(scope="module")
def local_ray():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield
    ray.shutdown()


def synthetic_split(size: int, seed: int, languages=(0, 1, 2)) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    language_index = rng.choice(languages, size)
    labels = rng.integers(0, 3, size)
    # The label shows up as a token, so the student can learn something in a few steps.
    input_ids = [np.concatenate([[1], rng.integers(5, VOCAB, rng.integers(3, 12)), [2 + label]]).astype(np.int32)
                 for label in labels]
    proportions = np.eye(3, dtype=np.float32)[language_index]
    return EncodedSplit(
        ids=np.array([f"s{seed}:{i}" for i in range(size)]),
        input_ids=input_ids,
        labels=labels,
        lang_proportions=proportions,
        language_index=language_index,
        teacher_logits=rng.normal(size=(size, 3)).astype(np.float32),
    )


def settings(method: str, **changes) -> LoopSettings:
    values = dict(
        method=method, model_source=None, student_config=STUDENT, seed=0, epochs=1.0, max_steps=None,
        batch_size=8, learning_rate=1e-3, loss=LossSettings("forward_kl", 2.0, 0.5, 0.5),
        kd_weight_init=[1.0, 1.0, 1.0], decision_interval=2, eval_examples=None, torch_threads=1, pad_token_id=0,
    )
    values.update(changes)
    return LoopSettings(**values)


def run(tmp_path, loop_settings, train, dev, name, max_failures=0):
    splits_ref = ray.put({"train": train, "dev": dev})
    return fit(loop_settings, splits_ref, ScalingConfig(num_workers=2, max_failures=max_failures),
               storage_path=tmp_path / "ray", run_name=name, output_dir=tmp_path / name)


def test_uneven_rows_give_equal_steps(local_ray, tmp_path):
    # 40 rows, batch size 8, 2 workers: 2 full steps per rank per epoch, never a hang.
    result = run(tmp_path, settings("kd", epochs=2.0), synthetic_split(40, 1), synthetic_split(16, 2), "uneven")

    assert [record["step"] for record in result.history] == [2, 4]
    assert result.metrics["step"] == 4


def test_missing_language_reports_nan(local_ray, tmp_path):
    dev = synthetic_split(30, 3, languages=(0, 1))

    result = run(tmp_path, settings("kd"), synthetic_split(64, 4), dev, "no-hindi")

    for record in result.history:
        assert math.isnan(record["macro_f1/hi"])
        assert record["n/hi"] == 0
        assert record["n/en"] + record["n/es"] == 30
    assert set(f"macro_f1/{lang}" for lang in LANGS) <= set(result.metrics)


def test_checkpoint_loads_with_transformers(local_ray, tmp_path):
    from transformers import AutoModelForSequenceClassification

    result = run(tmp_path, settings("none"), synthetic_split(64, 5), synthetic_split(16, 6), "none")
    model = AutoModelForSequenceClassification.from_pretrained(result.checkpoint_dir)

    assert model.config.num_labels == 3
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in build_student(STUDENT, 0).parameters())


def test_rl_run_changes_weights(local_ray, tmp_path):
    config = ControllerConfig(group_size=2, probe_steps=2, reward_examples=16, reward_design="macro_f1_gain")
    name = "rlkd-controller-test-rl"
    controller = start_controller(name, config, [1.0, 1.0, 1.0], seed=0)
    try:
        loop_settings = settings("rl", epochs=3.0, controller_name=name, probe_steps=2, reward_examples=16)
        result = run(tmp_path, loop_settings, synthetic_split(96, 7), synthetic_split(24, 8), "rl")
        decisions = ray.get(controller.history.remote())
    finally:
        ray.kill(controller)

    # 96 rows / (2 workers x 8) = 6 steps per epoch, 18 steps, a decision every 2 steps except the last.
    assert len(decisions) == 8
    assert all(len(decision["rewards"]) == 2 for decision in decisions)
    final = np.asarray(result.history[-1]["kd_weight"])
    assert not np.allclose(final, 1.0)
    np.testing.assert_allclose(final.sum(), 3.0, rtol=1e-6)


def test_worker_error_is_one_clear_line(local_ray, tmp_path):
    bad = synthetic_split(8, 9)  # fewer rows than one batch per worker

    with pytest.raises(TrainingError, match="fewer than one batch per worker"):
        run(tmp_path, settings("kd"), bad, synthetic_split(8, 10), "too-small")


def test_hidden_alignment_trains_projection(local_ray, tmp_path):
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    teacher_config = {**STUDENT, "hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 2}
    BertForSequenceClassification(BertConfig(**teacher_config)).save_pretrained(tmp_path / "teacher")
    loop_settings = settings(
        "kd",
        loss=LossSettings("hidden_alignment", 2.0, 0.5, 0.5),
        teacher_source=str(tmp_path / "teacher"),
        layer_map=[(1, 2)],
    )

    result = run(tmp_path, loop_settings, synthetic_split(64, 11), synthetic_split(16, 12), "hidden")

    # The checkpoint is the plain student: no teacher, no projection.
    student = AutoModelForSequenceClassification.from_pretrained(result.checkpoint_dir)
    assert student.config.hidden_size == 16
    assert student.config.num_hidden_layers == 1
    assert math.isfinite(result.metrics["train_loss"])
    assert math.isfinite(result.metrics["kd_loss/all"])


def test_invalid_layer_map_fails_clearly(local_ray, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    BertForSequenceClassification(BertConfig(**STUDENT)).save_pretrained(tmp_path / "teacher")
    loop_settings = settings(
        "kd", loss=LossSettings("hidden_alignment", 2.0, 0.5, 0.5), teacher_source=str(tmp_path / "teacher"),
        layer_map=[(1, 7)],
    )

    with pytest.raises(TrainingError, match="invalid distill.layer_map entry"):
        run(tmp_path, loop_settings, synthetic_split(64, 13), synthetic_split(16, 14), "bad-map")


def test_lookahead_scores_a_large_group(local_ray, tmp_path):
    config = ControllerConfig(group_size=32, probe_steps=2, reward_examples=16, reward_design="balanced",
                              estimator="lookahead")
    name = "rlkd-controller-test-lookahead"
    controller = start_controller(name, config, [1.0, 1.0, 1.0], seed=0)
    try:
        loop_settings = settings("rl", epochs=3.0, controller_name=name, probe_steps=2, reward_examples=16,
                                 estimator="lookahead")
        result = run(tmp_path, loop_settings, synthetic_split(96, 7), synthetic_split(24, 8), "lookahead")
        decisions = ray.get(controller.history.remote())
    finally:
        ray.kill(controller)

    assert len(decisions) == 8
    assert all(len(decision["rewards"]) == 32 and not decision["excluded"] for decision in decisions)
    assert all(decision["summary"]["reward_std"] > 0 for decision in decisions)
    assert not np.allclose(result.history[-1]["kd_weight"], 1.0)


def test_dro_moves_weight_and_keeps_the_mean(local_ray, tmp_path):
    result = run(tmp_path, settings("dro", epochs=3.0, dro_step_size=1.0), synthetic_split(96, 11),
                 synthetic_split(24, 12), "dro")

    weights = np.asarray([record["kd_weight"] for record in result.history])
    np.testing.assert_allclose(weights[0], 1.0)
    np.testing.assert_allclose(weights.sum(axis=1), 3.0, rtol=1e-6)
    assert not np.allclose(weights[-1], 1.0)


@pytest.mark.timeout(300)
def test_failed_worker_resumes_with_controller_state(local_ray, tmp_path):
    config = ControllerConfig(group_size=2, probe_steps=2, reward_examples=16, reward_design="macro_f1_gain")
    name = "rlkd-controller-test-resume"
    controller = start_controller(name, config, [1.0, 1.0, 1.0], seed=0)
    marker = tmp_path / "failed-once"
    try:
        # Checkpoints come at every decision (even steps); step 7 fails once, after the checkpoint of step 6.
        loop_settings = settings("rl", epochs=3.0, controller_name=name, probe_steps=2, reward_examples=16,
                                 inject_failure_at_step=7, inject_failure_marker=str(marker),
                                 inject_failure_kind="exit")
        result = run(tmp_path, loop_settings, synthetic_split(96, 7), synthetic_split(24, 8), "resume", max_failures=1)
        decisions = ray.get(controller.history.remote())
        restores = ray.get(controller.restore_count.remote())
    finally:
        ray.kill(controller)

    assert marker.exists()
    assert restores == 1
    assert [record["step"] for record in result.history] == list(range(2, 19, 2))
    assert [decision["decision_id"] for decision in decisions] == list(range(2, 17, 2))
    assert (result.checkpoint_dir / "controller_state.pt").is_file()
    assert not (result.checkpoint_dir / "train_state.pt").exists()
    np.testing.assert_allclose(result.history[3]["kd_weight"], decisions[2]["applied"])


@pytest.mark.timeout(300)
def test_resumed_run_matches_an_uninterrupted_one(local_ray, tmp_path):
    train, dev = synthetic_split(96, 21), synthetic_split(32, 22)
    started = time.perf_counter()
    whole = run(tmp_path, settings("kd", epochs=3.0), train, dev, "whole")
    whole_s = time.perf_counter() - started
    resumed = run(tmp_path, settings("kd", epochs=3.0, inject_failure_at_step=9, inject_failure_kind="exit",
                                     inject_failure_marker=str(tmp_path / "failed")), train, dev, "resumed",
                  max_failures=1)
    # The extra wall time of the resumed run is what recovery cost: detection, a new worker group, reloading.
    print(f"recovery: uninterrupted {whole_s:.0f} s, with a killed worker {time.perf_counter() - started - whole_s:.0f} s")

    assert (tmp_path / "failed").exists()
    assert [record["step"] for record in resumed.history] == [record["step"] for record in whole.history]
    # Before the failure both runs computed the same thing; after it, the restored state carries on. Dropout
    # draws from a generator that the checkpoint does not hold, so later metrics agree within noise only.
    for before, after in zip(whole.history[:4], resumed.history[:4]):
        assert before["macro_f1/all"] == pytest.approx(after["macro_f1/all"], abs=1e-6)
    for key in ("macro_f1/all", "accuracy/all"):
        assert resumed.history[-1][key] == pytest.approx(whole.history[-1][key], abs=0.1)
    assert resumed.history[-1]["ce_loss/all"] == pytest.approx(whole.history[-1]["ce_loss/all"], rel=0.1)


def test_without_retries_an_injected_failure_fails_the_run(local_ray, tmp_path):
    loop_settings = settings("kd", inject_failure_at_step=2, inject_failure_marker=str(tmp_path / "marker"))

    with pytest.raises(TrainingError, match="injected failure at step 2"):
        run(tmp_path, loop_settings, synthetic_split(64, 13), synthetic_split(16, 14), "no-retry")


def test_nan_batch_is_skipped_and_counted(local_ray, tmp_path, caplog):
    train = synthetic_split(64, 15)
    train.teacher_logits[5] = np.nan  # one poisoned example: its batch is skipped once per epoch

    result = run(tmp_path, settings("kd", epochs=2.0), train, synthetic_split(16, 16), "nan-batch")

    assert result.metrics["skipped_batches"] == 2
    assert result.history[-1]["step"] == 8
    assert all(math.isfinite(record["kd_loss/all"]) for record in result.history)


def test_too_many_nan_batches_stop_with_the_ids(local_ray, tmp_path):
    train = synthetic_split(64, 17)
    train.teacher_logits[:] = np.nan

    with pytest.raises(TrainingError, match=r"max_skipped_batches=1.*example ids s17:"):
        run(tmp_path, settings("kd", max_skipped_batches=1), train, synthetic_split(16, 18), "nan-stop")


@pytest.mark.timeout(300)
def test_dead_controller_restarts_from_its_snapshot(local_ray, tmp_path):
    config = ControllerConfig(group_size=2, probe_steps=2, reward_examples=16, reward_design="macro_f1_gain")
    name = "rlkd-controller-test-crash"
    # The actor process exits while handling the update of decision 4, once.
    controller = start_controller(name, config, [1.0, 1.0, 1.0], seed=0, snapshot_path=tmp_path / "controller.pt",
                                  max_restarts=1, crash_at_decision=4, crash_marker=tmp_path / "crashed")
    try:
        loop_settings = settings("rl", epochs=3.0, controller_name=name, probe_steps=2, reward_examples=16,
                                 controller_timeout_s=60.0)
        result = run(tmp_path, loop_settings, synthetic_split(96, 7), synthetic_split(24, 8), "crash")
        decisions = ray.get(controller.history.remote())
        restarted = ray.get(controller.was_restarted.remote())
    finally:
        ray.kill(controller)

    assert (tmp_path / "crashed").exists()
    assert restarted
    assert result.metrics["controller_gaps"] == 1
    assert [record["step"] for record in result.history] == list(range(2, 19, 2))
    # Decision 2 came back from the snapshot; decision 4 was lost with the process; later ones ran as usual.
    assert [decision["decision_id"] for decision in decisions] == [2, 6, 8, 10, 12, 14, 16]
    np.testing.assert_allclose(result.history[2]["kd_weight"], result.history[1]["kd_weight"])
