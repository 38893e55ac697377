"""Object-store memory of a long `rl` run: does it stay flat over thousands of steps?

Runs one `rl` distillation with its controller actor on synthetic data: a tiny student, 2 CPU
workers, `--steps` steps per worker and a decision every `--decision-interval` steps. Meanwhile the
driver samples the Ray object store's used bytes every few seconds. Per-step exchanges (metrics,
candidates, probe outcomes, weights) travel as actor-call arguments and results; a leak there would
show as growth. Prints the samples' first, last and maximum values and writes them to
bench/results/object_store.json.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/object_store.py --steps 2000
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import tempfile
from pathlib import Path

import numpy as np
import ray
import torch

from rlkd.config import ControllerConfig, ScalingConfig
from rlkd.control.controller import start_controller
from rlkd.train.encoding import EncodedSplit
from rlkd.train.loop import LoopSettings
from rlkd.train.runner import fit
from rlkd.train.step import LossSettings

VOCAB = 64
STUDENT = {
    "vocab_size": VOCAB, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
    "intermediate_size": 32, "pad_token_id": 0, "max_position_embeddings": 64, "num_labels": 3,
}
RESULTS = Path(os.environ.get("RLKD_BENCH_RESULTS", Path(__file__).parent / "results")) / "object_store.json"


def synthetic_split(size: int, seed: int) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    language_index = rng.integers(0, 3, size)
    labels = rng.integers(0, 3, size)
    input_ids = [np.concatenate([[1], rng.integers(5, VOCAB, rng.integers(3, 12)), [2 + label]]).astype(np.int32)
                 for label in labels]
    return EncodedSplit(
        ids=np.array([f"s{seed}:{i}" for i in range(size)]), input_ids=input_ids, labels=labels,
        lang_proportions=np.eye(3, dtype=np.float32)[language_index], language_index=language_index,
        teacher_logits=rng.normal(size=(size, 3)).astype(np.float32),
    )


def object_store_bytes(gcs_address: str) -> int:
    """Bytes in use in the object store of the Ray at `gcs_address`, as `ray memory --stats-only` reports them.

    The address is explicit: without one, Ray would look up the newest `ray start` head on this machine,
    which need not be the Ray this script started.
    """
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    reply = get_memory_info_reply(get_state_from_address(gcs_address))
    return int(reply.store_stats.object_store_bytes_used)


class Sampler(threading.Thread):
    def __init__(self, gcs_address: str, interval_s: float):
        super().__init__(daemon=True)
        self.gcs_address = gcs_address
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.monotonic() - self.started, object_store_bytes(self.gcs_address)))
            self.stopped.wait(self.interval_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="Training steps per worker (default 2000).")
    parser.add_argument("--decision-interval", type=int, default=20, help="Steps between decisions (default 20).")
    parser.add_argument("--sample-s", type=float, default=2.0, help="Seconds between samples (default 2).")
    args = parser.parse_args()

    context = ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    train, dev = synthetic_split(512, 1), synthetic_split(96, 2)
    splits_ref = ray.put({"train": train, "dev": dev})
    config = ControllerConfig(group_size=4, probe_steps=2, reward_examples=32, reward_design="macro_f1_gain")
    controller = start_controller("rlkd-controller-object-store", config, [1.0, 1.0, 1.0], seed=0)
    settings = LoopSettings(
        method="rl", model_source=None, student_config=STUDENT, seed=0, epochs=1000.0, max_steps=args.steps,
        batch_size=8, learning_rate=1e-3, loss=LossSettings("forward_kl", 2.0, 0.5, 0.5),
        kd_weight_init=[1.0, 1.0, 1.0], decision_interval=args.decision_interval, eval_examples=None,
        torch_threads=1, pad_token_id=0, controller_name="rlkd-controller-object-store", probe_steps=2,
        reward_examples=32,
    )

    sampler = Sampler(context.address_info["gcs_address"], args.sample_s)
    sampler.start()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        result = fit(settings, splits_ref, ScalingConfig(num_workers=2), storage_path=Path(folder) / "ray",
                     run_name="object-store", output_dir=Path(folder) / "student")
    seconds = time.perf_counter() - started
    sampler.stopped.set()
    sampler.join()
    decisions = len(ray.get(controller.history.remote()))
    ray.kill(controller)

    used = [value for _, value in sampler.samples]
    # The splits put before the run stay in the store throughout; growth is measured on top of them.
    summary = {
        "steps_per_worker": result.history[-1]["step"], "decisions": decisions, "seconds": round(seconds, 1),
        "samples": len(used), "first_mib": used[0] / 2**20, "last_mib": used[-1] / 2**20,
        "max_mib": max(used) / 2**20, "growth_mib": (used[-1] - used[0]) / 2**20,
        "torch": torch.__version__, "ray": ray.__version__,
        "series": [[round(t, 1), value] for t, value in sampler.samples],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=1))
    print(f"{summary['steps_per_worker']} steps, {decisions} decisions in {seconds:.0f} s: object store "
          f"{summary['first_mib']:.2f} MiB at the start, {summary['last_mib']:.2f} MiB at the end, "
          f"max {summary['max_mib']:.2f} MiB ({len(used)} samples)")
    ray.shutdown()


if __name__ == "__main__":
    main()
