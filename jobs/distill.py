"""Distillation job: one method's students, with the teacher from the cache (`rlkd compare --methods METHOD`).

The first argument is the method (none, kd, dro, temperature or rl); the rest go to `rlkd compare`.
Submit from the repository root:

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --runtime-env jobs/runtime_env.yaml -- \
        python jobs/distill.py rl --config jobs/configs/distill_rl.yaml --data "$PWD/../shared/data/sentimix" \
        --out "$PWD/outputs/jobs/distill-rl-{run_id}"

Expect status SUCCEEDED after about 7 minutes on 2 cores once the teacher is cached (run jobs/teacher.py
first, or this job fine-tunes it, about 15 minutes more). The report gives the teacher and the `rl` student:
`report: <repo>/outputs/jobs/distill-rl-<run id>/report.md`.
"""

import sys

from rlkd.cli import main

if __name__ == "__main__":
    method, *rest = sys.argv[1:] or ["--help"]
    sys.exit(main(["compare", "--methods", method, *rest]))
