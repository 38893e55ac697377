"""Controller cost: the share of an `rl` run's wall time spent on the controller, at default settings.

The training function of every worker times its parts and reports them with its metrics, and each
student's summary.json keeps the last report's timings. The controller's part is everything a
decision adds. That is the `propose` call (metrics to the actor, candidates back) and the probes of
the candidates. It is also the `update` call (probe results to the actor, the GRPO update, weights
back) and the collectives in which the ranks agree on candidates and weights.
The dev evaluation at each decision point is listed apart: every method runs it, `kd` included.
Target: the controller takes at most 15% of the training function's wall time.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/controller_cost.py --data ../shared/data/sentimix
    .venv/bin/python bench/controller_cost.py --run outputs/bench/quality/<run id>

Without --run it trains a `kd` and an `rl` student at default settings (about 10 minutes on 2
cores). With --run it reads every `rl` student of a finished compare run, such as the one
bench/quality.py leaves.
Writes bench/results/controller_cost.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import RESULTS_DIR, add_compare_arguments, compare_or_read, machine, setup_logging, write_results
from rlkd.compare import SUMMARY_FILE

RESULTS = RESULTS_DIR / "controller_cost.json"
TARGET_SHARE = 0.15
PARTS = ("controller_propose_s", "controller_estimate_s", "controller_update_s", "controller_sync_s")


def student_timings(run_dir: Path, method: str) -> list[dict]:
    """Read the timings of every student of `method` in a compare run, one per seed."""
    found = []
    for path in sorted((run_dir / "students").glob(f"{method}/**/{SUMMARY_FILE}")):
        summary = json.loads(path.read_text())
        if not summary.get("timings"):
            raise SystemExit(f"{path} has no timings: it was written by an rlkd older than this benchmark")
        found.append({"seed": summary["seed"], "method_wall_s": summary["wall_seconds"], **summary["timings"]})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_compare_arguments(parser, "Read the rl students of this finished compare run.")
    args = parser.parse_args()
    setup_logging()

    run_dir = compare_or_read(parser, args, "controller_cost", ["methods=kd,rl"])
    config_used = json.loads((run_dir / "config.json").read_text())
    rl = student_timings(run_dir, "rl")
    if not rl:
        raise SystemExit(f"no rl student in {run_dir / 'students'}")
    kd = student_timings(run_dir, "kd")

    # Shares of the training function's wall time, per seed, then their mean.
    shares = [run["controller_s"] / run["wall_s"] for run in rl]
    parts = {part: float(np.mean([run.get(part, 0.0) / run["wall_s"] for run in rl])) for part in PARTS}
    eval_share = float(np.mean([run["eval_s"] / run["wall_s"] for run in rl]))
    controller = config_used["controller"]
    summary = {
        "compared": f"controller seconds / training-function wall seconds of {len(rl)} rl student(s) at "
                    f"G={controller['group_size']}, probe_steps={controller['probe_steps']}, "
                    f"reward_examples={controller['reward_examples']}, "
                    f"decision_interval={config_used['distill']['decision_interval']}, {controller['estimator']} "
                    f"estimator, {config_used['scaling']['num_workers']} workers",
        "machine": machine(config_used["scaling"]["torch_threads"] or int(config_used["scaling"]["cpus_per_worker"])),
        "run": str(run_dir.resolve()),
        "controller_share": round(float(np.mean(shares)), 4),
        "controller_share_per_seed": [round(share, 4) for share in shares],
        "parts_share": {part: round(value, 4) for part, value in parts.items()},
        "dev_eval_share": round(eval_share, 4),
        "rl_wall_s": round(float(np.mean([run["wall_s"] for run in rl])), 1),
        "kd_wall_s": round(float(np.mean([run["wall_s"] for run in kd])), 1) if kd else None,
        "runs": rl,
        "target_share": TARGET_SHARE,
        "target_met": bool(np.mean(shares) <= TARGET_SHARE),
    }
    write_results(RESULTS, summary)
    print(f"controller cost: {100 * np.mean(shares):.1f}% of the rl training function's wall time "
          f"(propose {100 * parts['controller_propose_s']:.1f}%, probes {100 * parts['controller_estimate_s']:.1f}%, "
          f"update {100 * parts['controller_update_s']:.1f}%, rank synchronisation "
          f"{100 * parts['controller_sync_s']:.1f}%; dev evaluation, as in every method, "
          f"{100 * eval_share:.1f}%), target <= {100 * TARGET_SHARE:.0f}%")


if __name__ == "__main__":
    main()
