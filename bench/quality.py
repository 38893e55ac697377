"""Quality: test macro-F1 per language of none, kd, dro, temperature and rl, mean and std over seeds.

Runs `rlkd compare` at default settings on the full corpus (every method, 3 seeds: about 80
minutes on 2 cores with a cached teacher), or reads a finished compare run with --run. Prints the
table and whether `rl` meets the target: at least 2 points above `kd` on worst-language
macro-F1, with overall macro-F1 no lower. Writes bench/results/quality.json, which
bench/controller_cost.py and bench/student_teacher.py can read back through its `run` field.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/quality.py --data ../shared/data/sentimix [--seeds 3]
    .venv/bin/python bench/quality.py --run outputs/bench/quality/<run id>

--smoke-test runs the smoke profile instead (a few hundred tweets; F1 carries no information), to
check the script itself.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from common import RESULTS_DIR, add_compare_arguments, compare_or_read, machine, setup_logging, write_results
from rlkd.constants import LANGS, METHODS

RESULTS = RESULTS_DIR / "quality.json"
TARGET_POINTS = 2.0  # rl over kd on worst-language macro-F1, in F1 points


def summarise(run_dir: Path) -> dict:
    """Mean and sample std over seeds of each method's macro-F1 per language, overall and on its worst language."""
    frame = pd.read_csv(run_dir / "results.csv")
    wide = frame.pivot_table(index=["method", "seed"], columns="lang", values="macro_f1").reset_index()
    wide["worst_lang"] = wide[list(LANGS)].min(axis=1)
    order = [method for method in ("teacher", *METHODS) if method in set(wide["method"])]
    table = {}
    for method in order:
        rows = wide[wide["method"] == method]
        table[method] = {"seeds": int(len(rows))}
        for column in (*LANGS, "all", "worst_lang"):
            table[method][column] = {"mean": round(float(rows[column].mean()), 4),
                                     "std": round(float(rows[column].std(ddof=1)), 4) if len(rows) > 1 else None}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_compare_arguments(parser, "Read this finished compare run instead of training.")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds per method (default 3).")
    parser.add_argument("--methods", default=",".join(METHODS), help="Methods to train (default: all five).")
    args = parser.parse_args()
    setup_logging()

    run_dir = compare_or_read(parser, args, "quality", [f"methods={args.methods}", f"seeds={args.seeds}"])
    config_used = json.loads((run_dir / "config.json").read_text())

    table = summarise(run_dir)
    missing = [method for method in ("kd", "rl") if method not in table]
    gain = None
    if not missing:
        gain = 100 * (table["rl"]["worst_lang"]["mean"] - table["kd"]["worst_lang"]["mean"])
        overall = 100 * (table["rl"]["all"]["mean"] - table["kd"]["all"]["mean"])
    summary = {
        "compared": f"test macro-F1 of {', '.join(table)}; {max(row['seeds'] for row in table.values())} seed(s) "
                    f"per student method, "
                    f"{'smoke profile' if config_used['data']['max_tweets_per_file'] else 'full corpus'}",
        "machine": machine(config_used["scaling"]["torch_threads"] or int(config_used["scaling"]["cpus_per_worker"])),
        "run": str(run_dir.resolve()),
        "methods": table,
        "rl_minus_kd_worst_lang_points": None if gain is None else round(gain, 2),
        "rl_minus_kd_all_points": None if gain is None else round(overall, 2),
        "target": f"rl >= kd + {TARGET_POINTS} points on worst_lang, and rl >= kd on all",
        "target_met": None if gain is None else bool(gain >= TARGET_POINTS and overall >= 0),
    }
    write_results(RESULTS, summary)

    print(f"{'method':<12} {'all':>14} " + " ".join(f"{lang:>14}" for lang in (*LANGS, "worst_lang")))
    for method, row in table.items():
        cells = [f"{row[c]['mean']:.3f}" + (f" ± {row[c]['std']:.3f}" if row[c]["std"] is not None else "")
                 for c in ("all", *LANGS, "worst_lang")]
        print(f"{method:<12} " + " ".join(f"{cell:>14}" for cell in cells))
    if gain is not None:
        print(f"quality: rl - kd = {gain:+.2f} points on worst-language macro-F1, {overall:+.2f} overall "
              f"(target: >= +{TARGET_POINTS:.0f} and >= 0): {'met' if summary['target_met'] else 'not met'}")
    else:
        print(f"quality: no target check, the run lacks {', '.join(missing)}")


if __name__ == "__main__":
    main()
