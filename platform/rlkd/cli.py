"""The `rlkd` command: parses flags, calls the library, and turns known errors into one-line messages."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from rlkd.config import ConfigError, describe_fields, load_config

logger = logging.getLogger("rlkd")

EXIT_USAGE = 2


class UsageError(ValueError):
    """A flag or path given on the command line that cannot be used."""


def _config_help() -> str:
    rows = describe_fields()
    width = max(len(name) for name, _, _ in rows)
    lines = ["config fields (set in --config YAML or with --set section.field=value):"]
    lines += [f"  {name:<{width}}  {help} (default: {default!r})" for name, default, help in rows]
    return "\n".join(lines)


def _add_common(parser: argparse.ArgumentParser, *, data_required: bool) -> None:
    parser.add_argument("--data", type=Path, required=data_required, metavar="DIR",
                        help="Corpus folder (for example ../shared/data/sentimix); train/trial files are found by name.")
    parser.add_argument("--out", type=Path, default=Path("outputs"), metavar="DIR",
                        help="Output folder for results, reports, plots and checkpoints (default: outputs).")
    parser.add_argument("--config", type=Path, metavar="FILE.yaml", help="YAML file with config sections.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="Override one config field; repeatable, applied after --config.")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="Cache of prepared data and fine-tuned teachers (default: $RLKD_CACHE_DIR or ~/.cache/rlkd).")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlkd",
        description="Adaptive, per-language knowledge distillation of code-switched text classifiers on Ray.",
        epilog=_config_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    compare = commands.add_parser(
        "compare",
        help="Train and score teacher, no-KD, uniform-KD and RL-KD students side by side.",
        description="Fine-tune (or reuse) the teacher, train one student per method with the same data, seed and "
                    "step budget on Ray Train, and write results.csv, report.md, kd_weights.png, f1_by_lang.png "
                    "and the student checkpoints to --out.",
        epilog=_config_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(compare, data_required=True)
    compare.add_argument("--methods", metavar="LIST",
                         help="Comma-separated subset of none,kd,dro,temperature,rl (default: all five).")
    compare.add_argument("--seeds", type=int, metavar="N",
                         help="Train every student with N seeds (seed, seed+1, ...) and report mean and std.")
    compare.add_argument("--smoke-test", action="store_true",
                         help="A few hundred tweets and tiny models: checks the whole pipeline in minutes.")

    sweep = commands.add_parser(
        "sweep",
        help="Ray Tune sweep over reward designs and controller settings, with ASHA on a dev metric.",
        description="Prepare (or reuse) the teacher, then run one distillation per trial of the sweep section of "
                    "--config (default: one trial per reward design) under ASHA, and write sweep.csv and sweep.md "
                    "to --out. An interrupted sweep continues with --resume and the same --out.",
        epilog=_config_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(sweep, data_required=True)
    sweep.add_argument("--resume", action="store_true", help="Continue the interrupted sweep in --out.")
    sweep.add_argument("--smoke-test", action="store_true",
                       help="Tiny models and a few hundred tweets: a 4-trial sweep in a few minutes.")

    data = commands.add_parser("data", help="Corpus tools.")
    data_commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    inspect = data_commands.add_parser(
        "inspect",
        help="Summarise a corpus file or folder: tweets, labels, CMI and rejects per file, pair and language.",
    )
    inspect.add_argument("path", type=Path, help="A corpus file or folder.")
    inspect.add_argument("--out", type=Path, metavar="DIR", help="Also write data_report.md and cmi_histogram.png here.")
    inspect.add_argument("--mode", choices=("strict", "lenient"), default="lenient",
                         help="lenient (default) counts malformed records; strict stops at the first one.")
    inspect.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def _run_compare(args: argparse.Namespace) -> int:
    from rlkd.compare import ComparePaths, default_cache_dir, run_compare

    overrides = list(args.overrides)
    if args.methods:
        overrides.append(f"methods={args.methods}")
    if args.seeds is not None:
        overrides.append(f"seeds={args.seeds}")
    config = load_config(args.config, overrides, smoke_test=args.smoke_test)
    if args.data.is_file():
        raise UsageError(f"--data must be a folder, not a file: {args.data} (put the file in a folder of its own)")
    if not args.data.is_dir():
        raise UsageError(f"data folder not found: {args.data}")
    paths = ComparePaths(args.data.resolve(), args.out.resolve(), (args.cache_dir or default_cache_dir()).resolve())
    out_dir = run_compare(config, paths)
    print(f"report: {out_dir / 'report.md'}")
    return 0


def _run_sweep(args: argparse.Namespace) -> int:
    from rlkd.compare import default_cache_dir
    from rlkd.sweep import SweepPaths, run_sweep

    config = load_config(args.config, list(args.overrides), smoke_test=args.smoke_test)
    if not args.data.is_dir():
        raise UsageError(f"data folder not found: {args.data}")
    paths = SweepPaths(args.data.resolve(), args.out.resolve(), (args.cache_dir or default_cache_dir()).resolve())
    out_dir = run_sweep(config, paths, resume=args.resume)
    print(f"sweep: {out_dir / 'sweep.md'}")
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    from rlkd.data import inspect_corpus

    if not args.path.exists():
        raise UsageError(f"corpus path not found: {args.path}")
    report = inspect_corpus(args.path, args.out, mode=args.mode)
    print(report.to_markdown())
    return 0


def _known_errors() -> tuple[type[BaseException], ...]:
    from rlkd.data import DataError
    from rlkd.models import ModelError
    from rlkd.sweep import SweepError
    from rlkd.train.runner import TrainingError

    return (ConfigError, UsageError, DataError, ModelError, TrainingError, SweepError, FileNotFoundError,
            PermissionError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None or (args.command == "data" and args.data_command is None):
        parser.print_help()
        return EXIT_USAGE

    _setup_logging(args.verbose)
    # Backbones load from local paths, so by default transformers does not contact a model hub
    # that this machine may not reach. A value the user set for HF_HUB_OFFLINE is kept.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    try:
        if args.command == "compare":
            return _run_compare(args)
        if args.command == "sweep":
            return _run_sweep(args)
        return _run_inspect(args)
    except _known_errors() as error:
        print(f"rlkd: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rlkd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
