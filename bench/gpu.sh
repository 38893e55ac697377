#!/usr/bin/env bash
# GPU scaling check for a machine with one GPU: rlkd's KD throughput with one GPU worker against one
# CPU worker (every core), same student, batches and steps, through bench/scaling.py --gpu.
# Budget: under 10 minutes, including a teacher fine-tuned on the GPU when none is cached.
#
#   PYTHON=.venv/bin/python DATA=../shared/data/sentimix bench/gpu.sh
#
# The Python must have rlkd installed and a CUDA build of torch; the script stops at once otherwise.
# NOTE: written for the lent GPU machine and not yet run on one.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
DATA="${DATA:-../shared/data/sentimix}"
STEPS="${STEPS:-300}"
REPEATS="${REPEATS:-2}"

"$PYTHON" - <<'PY'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(f"bench/gpu.sh: torch {torch.__version__} sees no GPU; install a CUDA build of torch in this Python")
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
PY

# The teacher trains on the GPU too (one worker), so a machine without a cached teacher stays in budget.
HF_HUB_OFFLINE=1 timeout 570 "$PYTHON" bench/scaling.py --gpu --data "$DATA" --steps "$STEPS" --repeats "$REPEATS"
