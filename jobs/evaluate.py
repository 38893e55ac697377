"""Evaluation job: score the saved students of a compare run on a corpus's test split (`rlkd evaluate`).

Submit from the repository root, with RUN the --out folder of a finished compare job:

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --runtime-env jobs/runtime_env.yaml -- \
        python jobs/evaluate.py --run "$PWD/outputs/jobs/compare-RUN_ID" --data "$PWD/../shared/data/sentimix"

Expect status SUCCEEDED within a minute or two and `report: <RUN>/evaluation/report.md`, whose table
matches the run's own report.md for the same data.
"""

import sys

from rlkd.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
