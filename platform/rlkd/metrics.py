"""Every metric rlkd exports to Prometheus, and the one class that records them.

Metrics go through `ray.util.metrics`, so each node's Ray metrics agent
serves them beside Ray's own; Prometheus finds those agents through the
service-discovery file Ray writes (see cluster/prometheus/). Ray prefixes
every application metric with `ray_` on export, so the Grafana queries use
`prometheus_name(...)`, never a name typed by hand.

Every series carries `run` (the Train run name, `<run id>-<method>[-seed<N>]`)
and `method`; per-language series also carry `lang` (`en`, `es`, `hi`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RAY_EXPORT_PREFIX = "ray_"
RUN_LABELS = ("run", "method")
LANG_LABELS = ("run", "method", "lang")


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as given to ray.util.metrics; Prometheus stores RAY_EXPORT_PREFIX + name
    kind: str  # "gauge" or "counter"
    description: str  # the HELP text, with the unit
    per_language: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        return LANG_LABELS if self.per_language else RUN_LABELS


KD_WEIGHT = MetricSpec("rlkd_kd_weight", "gauge",
                       "KD weight applied to a language's tokens (dimensionless; 1 is uniform KD)", per_language=True)
DEV_ACCURACY = MetricSpec("rlkd_dev_accuracy_ratio", "gauge",
                          "Dev accuracy by dominant language at the latest decision point (ratio 0..1)",
                          per_language=True)
DEV_MACRO_F1 = MetricSpec("rlkd_dev_macro_f1_ratio", "gauge",
                          "Dev macro-F1 by dominant language at the latest decision point (ratio 0..1)",
                          per_language=True)
DEV_KD_LOSS = MetricSpec("rlkd_dev_kd_loss_nats", "gauge",
                         "Dev KD loss (teacher to student, temperature-scaled) by dominant language (nats per example)",
                         per_language=True)
DEV_CE_LOSS = MetricSpec("rlkd_dev_ce_loss_nats", "gauge",
                         "Dev cross-entropy on the labels by dominant language (nats per example)", per_language=True)
TRAIN_LOSS = MetricSpec("rlkd_train_loss_nats", "gauge",
                        "Weighted training loss (KD plus CE) of the latest batch on rank 0 (nats per example)")
REWARD_MEAN = MetricSpec("rlkd_controller_reward_mean", "gauge",
                         "Mean reward of the controller's latest candidate group (reward units of the design)")
REWARD_STD = MetricSpec("rlkd_controller_reward_std", "gauge",
                        "Standard deviation of rewards within the latest group (reward units of the design)")
KL_TO_REFERENCE = MetricSpec("rlkd_controller_kl_nats", "gauge",
                             "KL divergence of the controller policy to its reference policy (nats)")
CLIP_FRACTION = MetricSpec("rlkd_controller_clip_ratio", "gauge",
                           "Share of GRPO ratios clipped in the latest update (ratio 0..1)")
DECISIONS = MetricSpec("rlkd_controller_decisions_total", "counter", "Controller updates completed (decisions)")
SAMPLES_PER_SECOND = MetricSpec("rlkd_train_samples_per_second", "gauge",
                                "Training throughput over the latest decision interval, all ranks (samples per second)")
STEP_TIME = MetricSpec("rlkd_train_step_seconds", "gauge",
                       "Mean wall time of one training step over the latest decision interval (seconds)")
TRAIN_STEPS = MetricSpec("rlkd_train_steps_total", "counter", "Training steps taken (steps)")
# Fault counts are gauges holding the run's totals, checkpointed with it: a resumed run goes on from
# them, and the series exist at zero before the first fault, so a dashboard panel is never empty.
SKIPPED_BATCHES = MetricSpec("rlkd_skipped_batches", "gauge",
                             "Batches skipped so far because their loss was NaN or infinite (batches)")
CONTROLLER_GAPS = MetricSpec("rlkd_controller_gaps", "gauge",
                             "Decisions skipped so far because the controller was unreachable (decisions)")

ALL_METRICS: tuple[MetricSpec, ...] = (
    KD_WEIGHT, DEV_ACCURACY, DEV_MACRO_F1, DEV_KD_LOSS, DEV_CE_LOSS, TRAIN_LOSS,
    REWARD_MEAN, REWARD_STD, KL_TO_REFERENCE, CLIP_FRACTION, DECISIONS,
    SAMPLES_PER_SECOND, STEP_TIME, TRAIN_STEPS, SKIPPED_BATCHES, CONTROLLER_GAPS,
)

# The training loop's per-language metric keys (`<key>/<lang>`) behind each exported series.
DEV_METRIC_KEYS = {DEV_ACCURACY: "accuracy", DEV_MACRO_F1: "macro_f1", DEV_KD_LOSS: "kd_loss", DEV_CE_LOSS: "ce_loss"}


def prometheus_name(spec: MetricSpec) -> str:
    """Return the name Prometheus stores: Ray adds its prefix to application metrics (a counter keeps `_total`)."""
    return RAY_EXPORT_PREFIX + spec.name


class RunMetrics:
    """Records one run's metrics from the process that owns them (Train rank 0 or the controller actor).

    Ray metric objects are created on first use in the recording process,
    because they register with that process's core worker. Non-finite
    values are left out: a language missing from a dev shard has no F1, and
    a gap on the dashboard shows that more plainly than a NaN point.
    """

    def __init__(self, run: str, method: str):
        self.tags = {"run": run, "method": method}
        self._metrics: dict[str, object] = {}

    def set(self, spec: MetricSpec, value: float, lang: str | None = None) -> None:
        if value is None or not math.isfinite(float(value)):
            return
        self._metric(spec).set(float(value), tags=self._tags(spec, lang))

    def inc(self, spec: MetricSpec, value: float = 1.0) -> None:
        if value > 0:
            self._metric(spec).inc(float(value), tags=self._tags(spec, None))

    def _tags(self, spec: MetricSpec, lang: str | None) -> dict[str, str]:
        if spec.per_language != (lang is not None):
            raise ValueError(f"{spec.name} {'needs' if spec.per_language else 'takes no'} lang label")
        return {**self.tags, "lang": lang} if lang is not None else dict(self.tags)

    def _metric(self, spec: MetricSpec):
        from ray.util import metrics

        if spec.name not in self._metrics:
            kind = {"gauge": metrics.Gauge, "counter": metrics.Counter}[spec.kind]
            self._metrics[spec.name] = kind(spec.name, description=spec.description, tag_keys=spec.labels)
        return self._metrics[spec.name]
