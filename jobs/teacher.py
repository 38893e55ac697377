"""Teacher job: fine-tune the teacher once and cache it for later jobs (`rlkd teacher`).

Submit from the repository root:

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --runtime-env jobs/runtime_env.yaml -- \
        python jobs/teacher.py --data "$PWD/../shared/data/sentimix" --out "$PWD/outputs/jobs/teacher-{run_id}" \
        --cache-dir "$HOME/.cache/rlkd"

Expect status SUCCEEDED after about 18 minutes on 2 cores (a few seconds when the teacher is cached),
and `report: <repo>/outputs/jobs/teacher-<run id>/report.md` with the teacher's test macro-F1 (about
0.56 on SentiMix). Jobs that pass the same --cache-dir reuse the teacher.
"""

import sys

from rlkd.cli import main

if __name__ == "__main__":
    sys.exit(main(["teacher", *sys.argv[1:]]))
