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


class _RejectTokenValue(argparse.Action):
    """Reject `--token VALUE` without echoing VALUE, which argparse's "unrecognized arguments" error would print."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error("--token is not accepted, because a token on the command line shows in shell history and "
                     "process lists. Pass --token-file FILE or set GRAFANA_TOKEN.")


def _add_dashboards(commands: argparse._SubParsersAction) -> None:
    dashboards = commands.add_parser("dashboards", help="Check the Grafana dashboards or push them to Grafana.")
    dashboards_commands = dashboards.add_subparsers(dest="dashboards_command", metavar="DASHBOARDS_COMMAND")
    dir_help = "Folder of dashboard JSON models (default: dashboards)."

    check = dashboards_commands.add_parser("check", help="Check every dashboard model in --dir.")
    check.add_argument("--dir", type=Path, default=Path("dashboards"), metavar="DIR", help=dir_help)
    check.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")

    # allow_abbrev=False, because argparse would otherwise take `--token VALUE` for `--token-file VALUE`.
    push = dashboards_commands.add_parser(
        "push",
        allow_abbrev=False,
        help="Create or update the Prometheus data source, the folder and the dashboards on a Grafana server.",
        description="Check every dashboard in --dir, then create or update the Prometheus data source and the "
                    "folder on Grafana and upload the dashboards, replacing earlier versions. The token of a "
                    "Grafana service account with the Admin role comes from --token-file or $GRAFANA_TOKEN, "
                    "never from a flag value, so it stays out of shell history and process lists.",
    )
    push.add_argument("--url", required=True, metavar="URL", help="Grafana URL, for example http://127.0.0.1:3000.")
    push.add_argument("--token-file", type=Path, metavar="FILE",
                      help="File containing the Grafana token (default: the GRAFANA_TOKEN environment variable).")
    push.add_argument("--token", nargs="?", action=_RejectTokenValue, help=argparse.SUPPRESS)
    push.add_argument("--dir", type=Path, default=Path("dashboards"), metavar="DIR", help=dir_help)
    push.add_argument("--prometheus-url", default="http://127.0.0.1:9090", metavar="URL",
                      help="Prometheus URL as the Grafana server reaches it (default: http://127.0.0.1:9090).")
    push.add_argument("--datasource-name", default="rlkd-prometheus", metavar="NAME",
                      help="Name of the Grafana data source to create or update (default: rlkd-prometheus).")
    push.add_argument("--folder", default="rlkd", metavar="NAME",
                      help="Grafana folder for the dashboards, created if missing (default: rlkd).")
    push.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")


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
    compare.add_argument("--resume", action="store_true",
                         help="Continue the interrupted run in --out (its own folder) with the config it started "
                              "with: finished students are kept, an interrupted one continues from its checkpoint.")

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

    teacher = commands.add_parser(
        "teacher",
        help="Fine-tune the teacher (or reuse the cached one) and score it on the test split.",
        description="Prepare the data, fine-tune the teacher on Ray Train or take it from the cache, and write "
                    "results.csv and report.md to --out. Later compare runs with the same settings reuse it.",
        epilog=_config_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(teacher, data_required=True)
    teacher.add_argument("--smoke-test", action="store_true", help="A few hundred tweets and a few steps.")

    evaluate = commands.add_parser(
        "evaluate",
        help="Score the saved students of a compare run on a corpus's test split.",
        description="Load every student under RUN/students/ and score it per dominant language on the test split "
                    "of --data, read with the run's data settings; write results.csv and report.md to --out "
                    "(default RUN/evaluation).",
    )
    evaluate.add_argument("--run", type=Path, required=True, metavar="DIR", help="The --out folder of a compare run.")
    evaluate.add_argument("--data", type=Path, required=True, metavar="DIR", help="Corpus folder with a test file.")
    evaluate.add_argument("--out", type=Path, metavar="DIR", help="Output folder (default: RUN/evaluation).")
    evaluate.add_argument("--cache-dir", type=Path, metavar="DIR",
                          help="Cache of prepared data (default: $RLKD_CACHE_DIR or ~/.cache/rlkd).")
    evaluate.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")

    job = commands.add_parser("job", help="Submit rlkd's jobs/ entrypoints to a Ray cluster.")
    job_commands = job.add_subparsers(dest="job_command", metavar="JOB_COMMAND")
    submit = job_commands.add_parser(
        "submit",
        help="Check the upload size, then submit like `ray job submit`, with jobs/runtime_env.yaml.",
        description="Submit ENTRYPOINT (after --) from the repository root with the runtime environment of "
                    "jobs/runtime_env.yaml. Rejects, before uploading, a working dir over Ray's upload limit and "
                    "a runtime environment that carries a secret. Waits for the job and prints its logs unless "
                    "--no-wait.",
    )
    submit.add_argument("--address", default=os.environ.get("RAY_API_SERVER_ADDRESS") or "http://127.0.0.1:8265",
                        help="Ray dashboard address (default: $RAY_API_SERVER_ADDRESS or http://127.0.0.1:8265).")
    submit.add_argument("--runtime-env", type=Path, metavar="FILE.yaml",
                        help="Runtime environment (default: jobs/runtime_env.yaml under the current folder).")
    submit.add_argument("--no-wait", action="store_true", help="Print the submission id and return.")
    submit.add_argument("--timeout", type=float, default=3600.0, metavar="S", help="How long to wait (default 3600).")
    submit.add_argument("entrypoint", nargs=argparse.REMAINDER, help="-- then the command, e.g. python jobs/compare.py ...")
    submit.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")

    _add_dashboards(commands)

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
    out_dir = run_compare(config, paths, resume=args.resume)
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


def _run_teacher(args: argparse.Namespace) -> int:
    from rlkd.compare import ComparePaths, default_cache_dir
    from rlkd.runs import run_teacher

    config = load_config(args.config, list(args.overrides), smoke_test=args.smoke_test)
    if not args.data.is_dir():
        raise UsageError(f"data folder not found: {args.data}")
    paths = ComparePaths(args.data.resolve(), args.out.resolve(), (args.cache_dir or default_cache_dir()).resolve())
    out_dir = run_teacher(config, paths)
    print(f"report: {out_dir / 'report.md'}")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from rlkd.compare import default_cache_dir
    from rlkd.runs import run_evaluate

    for flag, path in (("--run", args.run), ("--data", args.data)):
        if not path.is_dir():
            raise UsageError(f"{flag} folder not found: {path}")
    out_dir = (args.out or args.run / "evaluation").resolve()
    run_evaluate(args.run.resolve(), args.data.resolve(), out_dir, (args.cache_dir or default_cache_dir()).resolve())
    print(f"report: {out_dir / 'report.md'}")
    return 0


def _run_job_submit(args: argparse.Namespace) -> int:
    import shlex

    from rlkd.submit import auth_hint, job_runtime_env, submit, wait

    entrypoint = args.entrypoint[1:] if args.entrypoint[:1] == ["--"] else args.entrypoint
    if not entrypoint:
        raise UsageError("no entrypoint: rlkd job submit [options] -- python jobs/compare.py ...")
    from ray.exceptions import RayError

    runtime_env = job_runtime_env(Path.cwd(), args.runtime_env)
    command = shlex.join(entrypoint)
    try:
        submission_id = submit(args.address, command, runtime_env)
    except (ConnectionError, RuntimeError, RayError) as error:
        raise UsageError(f"cannot submit to {args.address}: {_first_line(error)}{auth_hint()}") from None
    print(f"submitted: {submission_id}")
    if args.no_wait:
        return 0
    try:
        status, logs = wait(args.address, submission_id, args.timeout)
    except (ConnectionError, RuntimeError, RayError) as error:
        raise UsageError(f"lost contact with {args.address} while waiting for {submission_id}: "
                         f"{_first_line(error)}{auth_hint()}") from None
    print(logs, end="" if logs.endswith("\n") else "\n")
    print(f"job {submission_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def _run_dashboards(args: argparse.Namespace) -> int:
    from rlkd.dashboards import check_dashboards, count_panels, panel_queries, push_dashboards, read_token

    if args.dashboards_command == "check":
        for path, model in check_dashboards(args.dir).items():
            print(f"ok {path}: {count_panels(model)} panels, {len(panel_queries(model))} queries")
        return 0

    token = read_token(args.token_file)
    result = push_dashboards(args.url, token, args.dir, prometheus_url=args.prometheus_url,
                             datasource_name=args.datasource_name, folder=args.folder)
    for line in result.lines():
        print(line)
    return 0


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _run_inspect(args: argparse.Namespace) -> int:
    from rlkd.data import inspect_corpus

    if not args.path.exists():
        raise UsageError(f"corpus path not found: {args.path}")
    report = inspect_corpus(args.path, args.out, mode=args.mode)
    print(report.to_markdown())
    return 0


def _known_errors() -> tuple[type[BaseException], ...]:
    from rlkd.dashboards import DashboardError
    from rlkd.data import DataError
    from rlkd.models import ModelError
    from rlkd.submit import JobError
    from rlkd.sweep import SweepError
    from rlkd.train.runner import TrainingError

    return (ConfigError, UsageError, DashboardError, DataError, ModelError, TrainingError, SweepError, JobError,
            FileNotFoundError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None or (args.command == "data" and args.data_command is None) or (
            args.command == "job" and args.job_command is None) or (
            args.command == "dashboards" and args.dashboards_command is None):
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
        if args.command == "teacher":
            return _run_teacher(args)
        if args.command == "evaluate":
            return _run_evaluate(args)
        if args.command == "job":
            return _run_job_submit(args)
        if args.command == "dashboards":
            return _run_dashboards(args)
        return _run_inspect(args)
    except _known_errors() as error:
        print(f"rlkd: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rlkd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
