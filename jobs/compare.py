"""Compare job: the teacher and one student per method and seed, side by side (`rlkd compare`).

Submit from the repository root to a Ray cluster; `cluster/start-local-head.sh` starts one on 127.0.0.1:

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --runtime-env jobs/runtime_env.yaml -- \
        python jobs/compare.py --smoke-test --data "$PWD/../shared/data/sentimix" \
        --out "$PWD/outputs/jobs/compare-{run_id}"

Expect status SUCCEEDED after about 4 minutes on 2 cores (the smoke profile; about 45 minutes without
--smoke-test, 27 once the teacher is cached). Near the end of the job's logs a line names the report,
`report: <repo>/outputs/jobs/compare-<run id>/report.md`, beside results.csv, the plots and students/.
A smoke run writes about 650 MB, most of it Ray Train checkpoints under ray/.
`{run_id}` becomes the run's own id, so the same command submitted twice writes two folders.
Paths must be absolute, since the job runs in a copy of the working dir, and on a multi-node cluster
they must name shared storage (or set --set storage_path=s3://... for Ray Train's checkpoints).
"""

import sys

from rlkd.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
