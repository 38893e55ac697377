"""Sweep job: Ray Tune over reward designs and controller settings, with ASHA (`rlkd sweep`).

Submit from the repository root:

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --runtime-env jobs/runtime_env.yaml -- \
        python jobs/sweep.py --config jobs/configs/sweep_rewards.yaml --data "$PWD/../shared/data/sentimix" \
        --out "$PWD/outputs/jobs/sweep-rewards"

Expect status SUCCEEDED after about 27 minutes on 2 cores (6 trials) and `sweep: <repo>/outputs/jobs/
sweep-rewards/sweep.md` with the best trial's config. Add --resume with the same --out to continue an
interrupted sweep; the output folder is therefore fixed, not per run.
"""

import sys

from rlkd.cli import main

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))
