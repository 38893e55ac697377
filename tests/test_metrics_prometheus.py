"""A short distillation on a local Ray, scraped by a real Prometheus on 127.0.0.1: every dashboard query returns data.

Prometheus comes from Debian's `prometheus` package, which `.ci/run` installs.
Without it the test is skipped, unless RLKD_REQUIRE_PROMETHEUS=1 (set by
`.ci/run`) turns the skip into a failure.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import ray
import yaml

from rlkd import metrics as metric_specs
from rlkd.config import ControllerConfig
from rlkd.constants import LANGS
from rlkd.control.controller import start_controller
from rlkd.dashboards import load_dashboards, panel_queries

from conftest import REPO_ROOT, free_port
from test_train_ray import run, settings, synthetic_split

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

RUN_NAME = "metrics-rl"
SERVICE_DISCOVERY = "prom_metrics_service_discovery.json"


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        message = "Debian's prometheus is not installed (apt-get install prometheus)"
        if os.environ.get("RLKD_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="module")
def ray_on_loopback():
    if ray.is_initialized():
        ray.shutdown()
    metrics_port = free_port()
    # The dashboard process writes the service-discovery file, so it runs here too, on loopback.
    ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=free_port(),
             logging_level="ERROR", _node_ip_address="127.0.0.1", _metrics_export_port=metrics_port)
    yield metrics_port
    ray.shutdown()


def service_discovery_file(metrics_port: int) -> Path:
    """This session's service-discovery file, once it lists this Ray's metrics agent.

    Ray keeps it in the session folder and links /tmp/ray/<name> to the newest session's; the test
    reads its own session's, so another Ray on the machine cannot redirect the scrape.
    """
    path = Path(ray._private.worker._global_node.get_session_dir_path()) / SERVICE_DISCOVERY
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.is_file() and f":{metrics_port}\"" in path.read_text():
            return path
        time.sleep(1)
    pytest.fail(f"{path} never listed the metrics port {metrics_port}")


@pytest.fixture(scope="module")
def prometheus(prometheus_binary, ray_on_loopback, tmp_path_factory):
    """Prometheus with cluster/prometheus/prometheus.yml, scraping every second, on a free loopback port."""
    folder = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((REPO_ROOT / "cluster" / "prometheus" / "prometheus.yml").read_text())
    config.setdefault("global", {}).update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    discovery = service_discovery_file(ray_on_loopback)
    for job in config["scrape_configs"]:
        for source in job.get("file_sd_configs", []):
            source["files"] = [str(discovery)]
        # Ray lists each agent at the node's address; the agents listen on every interface, and the test
        # scrapes them on loopback only.
        job["relabel_configs"] = [{"source_labels": ["__address__"], "regex": "[^:]+:(\\d+)",
                                   "replacement": "127.0.0.1:$1", "target_label": "__address__"}]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))

    port = free_port()
    log = open(folder / "prometheus.log", "wb")
    process = subprocess.Popen(
        [prometheus_binary, f"--config.file={folder / 'prometheus.yml'}", f"--web.listen-address=127.0.0.1:{port}",
         f"--storage.tsdb.path={folder / 'data'}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, folder / "prometheus.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def wait_until_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"prometheus did not get ready: {log.read_text()[-2000:]}")


def query_range(url: str, expr: str, start: float, end: float) -> list[dict]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "2s"})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{params}", timeout=30) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.fixture(scope="module")
def scraped_run(prometheus, tmp_path_factory):
    """One short `rl` run with its controller; returns (prometheus url, start time)."""
    tmp_path = tmp_path_factory.mktemp("metrics-run")
    started = time.time() - 5
    config = ControllerConfig(group_size=2, probe_steps=2, reward_examples=16, reward_design="macro_f1_gain")
    controller = start_controller("rlkd-controller-metrics", config, [1.0, 1.0, 1.0], seed=0, run=RUN_NAME)
    try:
        loop_settings = settings("rl", epochs=4.0, controller_name="rlkd-controller-metrics", probe_steps=2,
                                 reward_examples=16)
        run(tmp_path, loop_settings, synthetic_split(96, 7), synthetic_split(24, 8), RUN_NAME)
        # Ray's agents export every few seconds; keep the actor alive until its last values are scraped.
        wait_for_series(prometheus, metric_specs.prometheus_name(metric_specs.DECISIONS), started)
    finally:
        ray.kill(controller)
    return prometheus, started


def wait_for_series(url: str, expr: str, started: float, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = query_range(url, expr, started, time.time())
        if result or time.monotonic() > deadline:
            return result
        time.sleep(2)


def test_every_metric_reaches_prometheus_with_labels(scraped_run):
    url, started = scraped_run

    for spec in metric_specs.ALL_METRICS:
        series = wait_for_series(url, metric_specs.prometheus_name(spec), started)
        assert series, f"{metric_specs.prometheus_name(spec)} never reached Prometheus"
        assert {entry["metric"]["run"] for entry in series} == {RUN_NAME}
        assert {entry["metric"]["method"] for entry in series} == {"rl"}
        if spec.per_language:
            assert {entry["metric"]["lang"] for entry in series} == set(LANGS)


def test_every_dashboard_query_returns_series(scraped_run):
    url, started = scraped_run
    dashboards = load_dashboards(REPO_ROOT / "dashboards")
    assert dashboards

    empty = []
    for path, model in dashboards.items():
        for query in panel_queries(model):
            series = wait_for_series(url, query.expr, started, timeout=30)
            if not series:
                empty.append(f"{path.name} panel {query.panel_id} '{query.title}' {query.ref_id}: {query.expr}")
                continue
            if query.per_language:
                langs = {entry["metric"].get("lang") for entry in series}
                assert langs == set(LANGS), f"panel '{query.title}' {query.expr}: lang values {langs}"
    assert not empty, "queries without data:\n" + "\n".join(empty)
