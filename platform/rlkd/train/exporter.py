"""The exporter of a training run's metrics, recorded on rank 0 at every decision point."""

from __future__ import annotations

from rlkd import metrics as metric_specs
from rlkd.constants import LANGS
from rlkd.metrics import RunMetrics


class MetricsExporter:
    """Turns the loop's steps and decision points into `rlkd.metrics` series for one run.

    Throughput and step time cover the steps since the previous decision
    point, so a dashboard shows the current pace rather than a run average
    that hides a slowdown.
    """

    def __init__(self, run: str | None, method: str):
        self.metrics = RunMetrics(run or method, method)
        self._seconds = 0.0
        self._samples = 0
        self._steps = 0

    def step(self, seconds: float, samples: int) -> None:
        self._seconds += seconds
        self._samples += samples
        self._steps += 1

    def decision_point(self, dev_metrics: dict[str, float], kd_weight: list[float], train_loss: float,
                       skipped_batches: int, controller_gaps: int) -> None:
        for lang, weight in zip(LANGS, kd_weight):
            self.metrics.set(metric_specs.KD_WEIGHT, weight, lang)
        for spec, key in metric_specs.DEV_METRIC_KEYS.items():
            for lang in LANGS:
                self.metrics.set(spec, dev_metrics.get(f"{key}/{lang}", float("nan")), lang)
        self.metrics.set(metric_specs.TRAIN_LOSS, train_loss)

        if self._steps:
            self.metrics.set(metric_specs.SAMPLES_PER_SECOND, self._samples / max(self._seconds, 1e-9))
            self.metrics.set(metric_specs.STEP_TIME, self._seconds / self._steps)
            self.metrics.inc(metric_specs.TRAIN_STEPS, self._steps)
        self.metrics.set(metric_specs.SKIPPED_BATCHES, skipped_batches)
        self.metrics.set(metric_specs.CONTROLLER_GAPS, controller_gaps)
        self._seconds, self._samples, self._steps = 0.0, 0, 0
