"""Compare the controller's two reward estimators on the real corpus: cost per decision and agreement.

At a few training states of a full-size student, the same group of
candidate weightings is scored twice: by probes (train `probe_steps` steps
per candidate, measure dev) and by lookahead (first-order prediction from
gradient inner products). The script prints, per state, each estimator's
seconds per decision and the Spearman rank correlation between the probe's
measured change of dev cross-entropy and the lookahead's predicted change,
then writes the figures to bench/results/estimators.json.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/estimators.py --data ../shared/data/sentimix

It runs in one process (no Train workers) with the default config, so the
teacher comes from the cache that `rlkd compare` fills.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import time
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import torch

from rlkd.compare import ComparePaths, check_cluster_fits, default_cache_dir, ensure_ray, new_run_id, prepare_run
from rlkd.config import load_config
from rlkd.constants import LANGS
from rlkd.models import build_student
from rlkd.train.encoding import collate
from rlkd.train.lookahead import LookaheadEstimator
from rlkd.train.probes import Prober, choose_probe_data
from rlkd.train.step import LossSettings, build_optimizer, training_step


def spearman(left: list[float], right: list[float]) -> float:
    return float(pd.Series(left).rank().corr(pd.Series(right).rank()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--states", type=int, nargs="+", default=[0, 100, 200], help="Training steps before each state.")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "estimators.json")
    args = parser.parse_args()

    config = load_config()
    torch.set_num_threads(os.cpu_count() or 1)
    ensure_ray()
    check_cluster_fits(config.scaling)
    prepared = prepare_run(config, ComparePaths(args.data.resolve(), Path("/tmp/rlkd-bench"), default_cache_dir()),
                           new_run_id(), Path("/tmp/rlkd-bench/ray"))
    train, dev = prepared.distill_splits["train"], prepared.distill_splits["dev"]
    ray.shutdown()

    distill = config.distill
    loss = LossSettings(distill.loss, distill.softmax_temperature, distill.kd_coefficient, distill.ce_weight)
    model = build_student(prepared.student_kwargs, config.seed)
    optimizer = build_optimizer(model, config.student.learning_rate)
    pad = prepared.student_tokenizer.pad_token_id
    controller = config.controller
    data = choose_probe_data(train, dev, probe_steps=controller.probe_steps, batch_size=config.student.batch_size,
                             reward_examples=controller.reward_examples, seed=config.seed)
    prober = Prober(model, optimizer, data, train, dev, loss, pad)
    lookahead = LookaheadEstimator(model, optimizer, data, train, dev, loss, pad, controller.probe_steps)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(train))

    rows, trained = [], 0
    for state in sorted(args.states):
        model.train()
        while trained < state:
            start = (trained * config.student.batch_size) % (len(order) - config.student.batch_size)
            batch = collate(train, order[start:start + config.student.batch_size], pad)
            training_step(model, optimizer, batch, torch.ones(len(LANGS)), loss)
            trained += 1
        candidates = (len(LANGS) * rng.dirichlet(np.ones(len(LANGS)), size=args.group_size)).tolist()

        started = time.perf_counter()
        before = prober.score(model)
        measured = prober.run(candidates, seed=config.seed + state)
        probe_seconds = time.perf_counter() - started
        started = time.perf_counter()
        predicted = lookahead.outcome(candidates)
        lookahead_seconds = time.perf_counter() - started

        measured_change = [after["ce_loss/all"] - before["ce_loss/all"] for after in measured]
        predicted_change = [-(after["neg_ce_loss/all"] - predicted["before"]["neg_ce_loss/all"])
                            for after in predicted["after"]]
        measured_f1_gain = [after["soft_macro_f1/all"] - before["soft_macro_f1/all"] for after in measured]
        rows.append({
            "state_step": state,
            "group_size": args.group_size,
            "probe_seconds": probe_seconds,
            "lookahead_seconds": lookahead_seconds,
            "spearman_ce_change": spearman(measured_change, predicted_change),
            "spearman_soft_f1_gain_vs_predicted_ce_decrease": spearman(
                measured_f1_gain, [-value for value in predicted_change]),
            "measured_ce_change": measured_change,
            "predicted_ce_change": predicted_change,
        })
        print(f"state {state:4d}: probe {probe_seconds:6.1f} s, lookahead {lookahead_seconds:5.1f} s, "
              f"Spearman(measured, predicted dev CE change) {rows[-1]['spearman_ce_change']:+.2f}, "
              f"Spearman(soft F1 gain, predicted CE decrease) "
              f"{rows[-1]['spearman_soft_f1_gain_vs_predicted_ce_decrease']:+.2f}")

    machine = {"cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
               "ray": ray.__version__, "python": host.python_version()}
    print("machine:", machine)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "states": rows}, indent=2))


if __name__ == "__main__":
    main()
