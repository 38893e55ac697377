"""Tests of the Grafana dashboards, their checks, and `rlkd dashboards push` against a local fake Grafana."""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from rlkd.cli import main
from rlkd.dashboards import (
    DashboardError,
    check_dashboard,
    check_dashboards,
    load_dashboards,
    panel_queries,
    push_dashboards,
    read_token,
)
from rlkd.metrics import ALL_METRICS, prometheus_name

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = REPO_ROOT / "dashboards"
RUN_DASHBOARD = DASHBOARD_DIR / "rlkd-run.json"
TOKEN = "glsa_rlkdTestToken_0123456789abcdef"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
METRIC_NAME = re.compile(r"\bray_rlkd_\w*")
SPECS_BY_NAME = {prometheus_name(spec): spec for spec in ALL_METRICS}


@pytest.fixture(autouse=True)
def local_connections_only(monkeypatch):
    """Keep every request on 127.0.0.1, even where the environment sets a proxy."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def run_model() -> dict:
    return json.loads(RUN_DASHBOARD.read_text())


# A fake Grafana server that records every request


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: object


class FakeGrafana:
    """Imitates the Grafana HTTP API endpoints that grafana-client calls during a push."""

    def __init__(self, fail_status: int | None = None, fail_path: str | None = None):
        # With fail_status set, every request (or only those to fail_path) gets that status and a message
        # that echoes the Authorization header, as a careless proxy might, so the tests see the token scrubbed.
        self.fail_status = fail_status
        self.fail_path = fail_path
        self.requests: list[RecordedRequest] = []
        self.datasources: dict[str, dict] = {}
        self.folders: list[dict] = []
        self.dashboard_versions: dict[str, int] = {}
        self._next_id = 1
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def route_request(self, method: str, path: str, headers: dict[str, str], body: object) -> tuple[int, object]:
        if self.fail_status is not None and self.fail_path in (None, path):
            return self.fail_status, {"message": f"request rejected for Authorization: {headers.get('Authorization')}"}
        route = (method, *path.strip("/").split("/"))
        if route == ("GET", "api", "frontend", "settings"):
            return 200, {"buildInfo": {"version": "11.3.0"}}
        if route[:3] == ("GET", "api", "datasources") and len(route) == 5:
            return self._get_datasource(route[3], unquote(route[4]))
        if route == ("POST", "api", "datasources"):
            return self._create_datasource(body)
        if route[:4] == ("PUT", "api", "datasources", "uid") and len(route) == 5:
            return self._update_datasource(route[4], body)
        if route == ("GET", "api", "folders"):
            return 200, self.folders
        if route == ("POST", "api", "folders"):
            folder = {"id": self.new_id(), "uid": body["uid"], "title": body["title"]}
            self.folders.append(folder)
            return 200, folder
        if route == ("POST", "api", "dashboards", "db"):
            return self._save_dashboard(body)
        return 404, {"message": "Not found"}

    def _get_datasource(self, key: str, value: str) -> tuple[int, object]:
        field = {"uid": "uid", "name": "name"}.get(key)
        match = next((d for d in self.datasources.values() if field and d[field] == value), None)
        return (200, match) if match else (404, {"message": "Data source not found"})

    def _create_datasource(self, body: dict) -> tuple[int, object]:
        datasource = {**body, "id": self.new_id(), "orgId": 1, "readOnly": False}
        self.datasources[datasource["uid"]] = datasource
        return 200, {"datasource": datasource, "id": datasource["id"], "message": "Datasource added"}

    def _update_datasource(self, uid: str, body: dict) -> tuple[int, object]:
        if uid not in self.datasources:
            return 404, {"message": "Data source not found"}
        self.datasources[uid] = {**body, "uid": uid}
        return 200, {"datasource": self.datasources[uid], "message": "Datasource updated"}

    def _save_dashboard(self, body: dict) -> tuple[int, object]:
        uid = body["dashboard"]["uid"]
        version = self.dashboard_versions.get(uid, 0) + 1
        self.dashboard_versions[uid] = version
        return 200, {"id": 7, "uid": uid, "url": f"/d/{uid}/rlkd-run", "status": "success", "version": version,
                     "slug": "rlkd-run"}

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _respond(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = urlsplit(self.path).path
                headers = dict(self.headers.items())
                fake.requests.append(RecordedRequest(self.command, path, headers, body))
                status, payload = fake.route_request(self.command, path, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _respond

            def log_message(self, format, *args):
                pass

        return Handler


@pytest.fixture
def grafana():
    server = FakeGrafana()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_no_token(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text
        assert TOKEN[:12] not in text


# The committed dashboards


def test_committed_dashboards_pass_check():
    models = load_dashboards(DASHBOARD_DIR)
    assert RUN_DASHBOARD in models
    for path, model in models.items():
        check_dashboard(model, path)


def test_run_dashboard_settings():
    model = run_model()
    variables = {v["name"]: v for v in model["templating"]["list"]}

    assert model["id"] is None
    assert model["uid"] == "rlkd-run"
    assert model["title"] == "rlkd run"
    assert model["time"] == {"from": "now-1h", "to": "now"}
    assert model["refresh"] == "10s"
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["run"]["multi"] is True
    assert variables["run"]["includeAll"] is True
    assert "label_values(ray_rlkd_train_steps_total" in variables["run"]["query"]


def test_every_metric_on_a_panel():
    used = {name for model in load_dashboards(DASHBOARD_DIR).values()
            for query in panel_queries(model) for name in METRIC_NAME.findall(query.expr)}
    missing = {prometheus_name(spec) for spec in ALL_METRICS} - used
    assert not missing, f"metrics on no panel: {sorted(missing)}"


def test_per_language_metrics_on_per_language_panels():
    for query in panel_queries(run_model()):
        specs = [SPECS_BY_NAME[name] for name in METRIC_NAME.findall(query.expr)]
        per_language = any(spec.per_language for spec in specs)
        aggregation = " ".join(query.expr.split())
        assert query.per_language == per_language, query
        if per_language:
            assert "by (run, lang)" in aggregation, query
        else:
            assert "by (run)" in aggregation, query


def test_counters_read_through_rate():
    for query in panel_queries(run_model()):
        counters = [name for name in METRIC_NAME.findall(query.expr) if SPECS_BY_NAME[name].kind == "counter"]
        if counters:
            assert "rate(" in query.expr or "increase(" in query.expr, query


def test_panel_queries_have_no_variables():
    queries = panel_queries(run_model())
    assert queries
    for query in queries:
        assert "$" not in query.expr, query


def test_panel_units_match_metrics():
    for panel in run_model()["panels"]:
        if panel["type"] == "row":
            continue
        unit = panel["fieldConfig"]["defaults"]["unit"]
        names = {name for target in panel["targets"] for name in METRIC_NAME.findall(target["expr"])}
        assert unit, panel["title"]
        if any(name.endswith("_ratio") for name in names):
            assert unit == "percentunit", panel["title"]
        if any(name.endswith("_seconds") for name in names):
            assert unit == "s", panel["title"]


def test_every_datasource_is_the_variable():
    model = run_model()
    for panel in model["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_panel_queries_parse_with_promtool(tmp_path):
    rules = [{"record": f"rlkd:check:{index}", "expr": query.expr}
             for index, query in enumerate(panel_queries(run_model()))]
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))

    result = subprocess.run(["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


def test_panel_queries_expand_variables():
    model = {"panels": [{"id": 1, "title": "t", "targets": [
        {"refId": "A", "legendFormat": "{{run}} {{ lang }}",
         "expr": 'sum by (run, lang) (rate(ray_rlkd_kd_weight{run=~"${run:regex}", method=~"$method"}'
                 '[$__rate_interval]))'},
        {"refId": "B", "legendFormat": "{{run}}", "expr": 'max(x{run=~"$run"}[${__interval}])'},
    ]}]}

    queries = panel_queries(model)

    assert queries[0].expr == 'sum by (run, lang) (rate(ray_rlkd_kd_weight{run=~".*", method=~".*"}[1m]))'
    assert queries[0].per_language is True
    assert queries[1].expr == 'max(x{run=~".*"}[1m])'
    assert queries[1].per_language is False
    assert (queries[1].panel_id, queries[1].title, queries[1].ref_id) == (1, "t", "B")


def test_panel_queries_include_collapsed_rows():
    model = run_model()
    inner = model["panels"].pop(1)
    model["panels"][0]["collapsed"] = True
    model["panels"][0]["panels"] = [inner]

    ids = {query.panel_id for query in panel_queries(model)}

    assert inner["id"] in ids


# check_dashboard rejections


def _set_id(model):
    model["id"] = 7


def _duplicate_panel_id(model):
    model["panels"][2]["id"] = model["panels"][1]["id"]


def _fixed_panel_datasource(model):
    model["panels"][1]["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}


def _fixed_target_datasource(model):
    model["panels"][1]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}


def _drop_datasource_variable(model):
    model["templating"]["list"] = [v for v in model["templating"]["list"] if v["name"] != "datasource"]


def _unknown_metric(model):
    model["panels"][1]["targets"][0]["expr"] = 'max by (run) (ray_rlkd_bogus_ratio{run=~"$run"})'


def _empty_expr(model):
    model["panels"][1]["targets"][0]["expr"] = "  "


REJECTIONS = [
    (_set_id, '"id" is 7', False),
    (_duplicate_panel_id, "duplicate panel id", True),
    (_fixed_panel_datasource, "datasource uid is 'P1809F7CD0C75ACF3'", True),
    (_fixed_target_datasource, "target A: datasource uid is 'P1809F7CD0C75ACF3'", True),
    (_drop_datasource_variable, 'no template variable "datasource"', False),
    (_unknown_metric, "unknown metric ray_rlkd_bogus_ratio", True),
    (_empty_expr, '"expr" is empty', True),
]


@pytest.mark.parametrize("break_model, expected, names_panel", REJECTIONS,
                         ids=[case[0].__name__.lstrip("_") for case in REJECTIONS])
def test_check_dashboard_rejects(break_model, expected, names_panel):
    model = run_model()
    break_model(model)

    with pytest.raises(DashboardError) as raised:
        check_dashboard(model, RUN_DASHBOARD)

    message = str(raised.value)
    assert str(RUN_DASHBOARD) in message
    assert expected in message
    if names_panel:
        panel = model["panels"][2] if break_model is _duplicate_panel_id else model["panels"][1]
        assert f"panel {panel['id']!r} {panel['title']!r}" in message


def test_check_dashboard_rejects_duplicate_in_row():
    model = run_model()
    model["panels"][0]["collapsed"] = True
    model["panels"][0]["panels"] = [copy.deepcopy(model["panels"][1])]

    with pytest.raises(DashboardError, match="duplicate panel id"):
        check_dashboard(model, "nested.json")


def test_check_dashboard_collects_all_problems():
    model = run_model()
    _set_id(model)
    _unknown_metric(model)

    with pytest.raises(DashboardError) as raised:
        check_dashboard(model, "two.json")

    message = str(raised.value)
    assert message.startswith("two.json: 2 problems: ")
    assert '"id" is 7' in message
    assert "ray_rlkd_bogus_ratio" in message
    assert "\n" not in message


def test_check_dashboard_rejects_wrapped_model():
    with pytest.raises(DashboardError, match="bare dashboard object"):
        check_dashboard({"dashboard": run_model()}, "wrapped.json")


def test_load_dashboards_names_invalid_json_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "uid": "x",\n  "panels": [,]\n}\n')

    with pytest.raises(DashboardError) as raised:
        load_dashboards(tmp_path)

    assert str(bad) in str(raised.value)
    assert "line 3" in str(raised.value)


def test_load_dashboards_missing_folder(tmp_path):
    with pytest.raises(DashboardError, match="dashboard folder not found"):
        load_dashboards(tmp_path / "absent")


def test_check_dashboards_names_every_bad_file(tmp_path):
    for name in ("a.json", "b.json"):
        model = run_model()
        _set_id(model)
        (tmp_path / name).write_text(json.dumps(model))

    with pytest.raises(DashboardError) as raised:
        check_dashboards(tmp_path)

    assert str(tmp_path / "a.json") in str(raised.value)
    assert str(tmp_path / "b.json") in str(raised.value)


# push_dashboards


def test_push_creates_everything(grafana):
    result = push_dashboards(grafana.url, TOKEN, DASHBOARD_DIR, prometheus_url="http://prometheus.test:9090")

    assert [item.action for item in (result.datasource, result.folder, *result.dashboards)] == [
        "created", "created", *["created"] * len(result.dashboards)]
    assert {r.headers.get("Authorization") for r in grafana.requests} == {f"Bearer {TOKEN}"}

    created = grafana.requests_to("POST", "/api/datasources")
    assert len(created) == 1
    assert created[0].body["type"] == "prometheus"
    assert created[0].body["url"] == "http://prometheus.test:9090"
    assert created[0].body["name"] == "rlkd-prometheus"
    assert created[0].body["uid"] == "rlkd-prometheus"

    folders = grafana.requests_to("POST", "/api/folders")
    assert [r.body for r in folders] == [{"title": "rlkd", "uid": "rlkd"}]


def test_push_dashboard_payload(grafana):
    push_dashboards(grafana.url, TOKEN, DASHBOARD_DIR)

    uploads = grafana.requests_to("POST", "/api/dashboards/db")
    assert len(uploads) == len(load_dashboards(DASHBOARD_DIR))
    payload = next(r.body for r in uploads if r.body["dashboard"]["uid"] == "rlkd-run")
    variable = next(v for v in payload["dashboard"]["templating"]["list"] if v["name"] == "datasource")
    assert payload["overwrite"] is True
    assert payload["folderUid"] == "rlkd"
    assert payload["dashboard"]["id"] is None
    assert variable["current"] == {"selected": True, "text": "rlkd-prometheus", "value": "rlkd-prometheus"}


def test_push_twice_updates(grafana):
    push_dashboards(grafana.url, TOKEN, DASHBOARD_DIR, prometheus_url="http://127.0.0.1:9090")

    result = push_dashboards(grafana.url, TOKEN, DASHBOARD_DIR, prometheus_url="http://127.0.0.1:9191")

    updates = grafana.requests_to("PUT", "/api/datasources/uid/rlkd-prometheus")
    assert len(grafana.requests_to("POST", "/api/datasources")) == 1
    assert len(updates) == 1
    assert updates[0].body["url"] == "http://127.0.0.1:9191"
    assert updates[0].body["type"] == "prometheus"
    assert len(grafana.requests_to("POST", "/api/folders")) == 1
    assert result.datasource.action == "updated"
    assert result.folder.action == "found"
    assert {item.action for item in result.dashboards} == {"updated"}
    assert "version 2" in result.dashboards[0].detail


def test_push_finds_datasource_by_name(grafana):
    grafana.datasources["P0123"] = {"id": 3, "uid": "P0123", "name": "rlkd-prometheus", "type": "prometheus",
                                    "url": "http://old:9090", "basicAuth": True, "jsonData": {"timeInterval": "5s"}}

    result = push_dashboards(grafana.url, TOKEN, DASHBOARD_DIR)

    update = grafana.requests_to("PUT", "/api/datasources/uid/P0123")
    upload = grafana.requests_to("POST", "/api/dashboards/db")[0].body
    variable = next(v for v in upload["dashboard"]["templating"]["list"] if v["name"] == "datasource")
    assert len(update) == 1
    assert update[0].body["basicAuth"] is True
    assert update[0].body["jsonData"] == {"timeInterval": "5s", "httpMethod": "POST"}
    assert result.datasource.uid == "P0123"
    assert variable["current"]["value"] == "P0123"


def test_push_rejects_other_datasource_type(grafana):
    grafana.datasources["L1"] = {"id": 3, "uid": "L1", "name": "rlkd-prometheus", "type": "loki"}

    with pytest.raises(DashboardError, match="type 'loki', not prometheus"):
        push_dashboards(grafana.url, TOKEN, DASHBOARD_DIR)

    assert not grafana.requests_to("PUT", "/api/datasources/uid/L1")


def test_push_custom_names(grafana):
    result = push_dashboards(grafana.url, TOKEN, DASHBOARD_DIR, datasource_name="Team Prometheus",
                             folder="ML runs")

    created = grafana.requests_to("POST", "/api/datasources")[0].body
    assert created["name"] == "Team Prometheus"
    assert created["uid"] == "Team-Prometheus"
    assert grafana.requests_to("GET", "/api/datasources/name/Team%20Prometheus")
    assert grafana.requests_to("POST", "/api/folders")[0].body == {"title": "ML runs", "uid": "ML-runs"}
    assert result.folder.uid == "ML-runs"


@pytest.mark.parametrize("status", [401, 403, 500])
def test_push_http_error_hides_token(status):
    server = FakeGrafana(fail_status=status)
    server.start()
    try:
        with pytest.raises(DashboardError) as raised:
            push_dashboards(server.url, TOKEN, DASHBOARD_DIR)
    finally:
        server.stop()

    message = str(raised.value)
    assert server.url in message
    assert f"HTTP {status}" in message
    assert "\n" not in message
    assert_no_token(message, repr(raised.value))
    assert raised.value.__cause__ is None


def test_push_error_names_failed_step():
    server = FakeGrafana(fail_status=403, fail_path="/api/datasources")
    server.start()
    try:
        with pytest.raises(DashboardError) as raised:
            push_dashboards(server.url, TOKEN, DASHBOARD_DIR)
    finally:
        server.stop()

    message = str(raised.value)
    assert "failed while creating or updating data source 'rlkd-prometheus': HTTP 403 Forbidden" in message
    assert "Admin role" in message
    assert_no_token(message)
    assert not server.requests_to("POST", "/api/dashboards/db")


def test_push_connection_refused(closed_port_url):
    with pytest.raises(DashboardError) as raised:
        push_dashboards(closed_port_url, TOKEN, DASHBOARD_DIR)

    assert closed_port_url in str(raised.value)
    assert "Connection refused" in str(raised.value)
    assert_no_token(str(raised.value))


def test_push_checks_before_sending(grafana, tmp_path):
    model = run_model()
    _set_id(model)
    (tmp_path / "bad.json").write_text(json.dumps(model))

    with pytest.raises(DashboardError, match='"id" is 7'):
        push_dashboards(grafana.url, TOKEN, tmp_path)

    assert grafana.requests == []


@pytest.mark.parametrize("url", ["127.0.0.1:3000", "ftp://127.0.0.1", "http://"])
def test_push_rejects_invalid_url(url):
    with pytest.raises(DashboardError, match="invalid Grafana URL"):
        push_dashboards(url, TOKEN, DASHBOARD_DIR)


def test_push_url_credentials_not_in_message(closed_port_url):
    url = closed_port_url.replace("http://", "http://admin:hunter2@")

    with pytest.raises(DashboardError) as raised:
        push_dashboards(url, TOKEN, DASHBOARD_DIR)

    assert "hunter2" not in str(raised.value)


# read_token


def test_read_token_from_environment(monkeypatch):
    monkeypatch.setenv("GRAFANA_TOKEN", f"  {TOKEN}\n")

    assert read_token(None) == TOKEN


def test_read_token_missing(monkeypatch):
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)

    with pytest.raises(DashboardError, match="set GRAFANA_TOKEN or pass --token-file"):
        read_token(None)


def test_read_token_file(tmp_path, caplog):
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    token_file.chmod(0o600)

    with caplog.at_level(logging.WARNING):
        assert read_token(token_file) == TOKEN

    assert caplog.records == []


def test_read_token_file_readable_by_others(tmp_path, caplog):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)

    with caplog.at_level(logging.WARNING):
        read_token(token_file)

    assert str(token_file) in caplog.text
    assert "chmod 600" in caplog.text
    assert_no_token(caplog.text)


@pytest.mark.parametrize("content", ["", "  \n"])
def test_read_token_empty_file(tmp_path, content):
    token_file = tmp_path / "token"
    token_file.write_text(content)

    with pytest.raises(DashboardError, match=f"empty: {re.escape(str(token_file))}"):
        read_token(token_file)


def test_read_token_unreadable_file(tmp_path):
    with pytest.raises(DashboardError, match=re.escape(str(tmp_path / "absent"))):
        read_token(tmp_path / "absent")


def test_read_token_file_with_two_words(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\nsecond line\n")

    with pytest.raises(DashboardError) as raised:
        read_token(token_file)

    assert str(token_file) in str(raised.value)
    assert_no_token(str(raised.value))


# The rlkd dashboards command


def test_cli_check_prints_summary(capsys):
    assert main(["dashboards", "check", "--dir", str(DASHBOARD_DIR)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert any(re.fullmatch(rf"ok {re.escape(str(RUN_DASHBOARD))}: \d+ panels, \d+ queries", line) for line in lines)


def test_cli_check_invalid_dashboard(tmp_path, capsys):
    model = run_model()
    _unknown_metric(model)
    (tmp_path / "bad.json").write_text(json.dumps(model))

    assert main(["dashboards", "check", "--dir", str(tmp_path)]) == 2

    err = capsys.readouterr().err
    assert err.startswith("rlkd: error: ")
    assert err.count("\n") == 1
    assert "ray_rlkd_bogus_ratio" in err


def test_cli_push(grafana, monkeypatch, capsys, caplog):
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)

    code = main(["dashboards", "push", "--url", grafana.url, "--dir", str(DASHBOARD_DIR), "-v"])

    captured = capsys.readouterr()
    assert code == 0
    assert "created datasource 'rlkd-prometheus' (uid rlkd-prometheus): http://127.0.0.1:9090" in captured.out
    assert "created folder 'rlkd' (uid rlkd)" in captured.out
    assert f"{grafana.url}/d/rlkd-run/rlkd-run" in captured.out
    assert_no_token(captured.out, captured.err, caplog.text)


@pytest.mark.parametrize("status", [401, 500])
def test_cli_push_http_error(status, monkeypatch, capsys, caplog):
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    server = FakeGrafana(fail_status=status)
    server.start()
    try:
        code = main(["dashboards", "push", "--url", server.url, "--dir", str(DASHBOARD_DIR), "-v"])
    finally:
        server.stop()

    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith(f"rlkd: error: Grafana request to {server.url} failed while checking the server: "
                                   f"HTTP {status}")
    assert captured.err.count("\n") == 1
    assert_no_token(captured.out, captured.err, caplog.text)


def test_cli_push_connection_refused(closed_port_url, monkeypatch, capsys, caplog):
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)

    code = main(["dashboards", "push", "--url", closed_port_url, "--dir", str(DASHBOARD_DIR), "-v"])

    captured = capsys.readouterr()
    assert code == 2
    assert closed_port_url in captured.err
    assert captured.err.count("\n") == 1
    assert_no_token(captured.out, captured.err, caplog.text)


def test_cli_push_without_token(grafana, monkeypatch, capsys):
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)

    code = main(["dashboards", "push", "--url", grafana.url, "--dir", str(DASHBOARD_DIR)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "GRAFANA_TOKEN" in err
    assert "--token-file" in err
    assert grafana.requests == []


def test_cli_push_token_file(grafana, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    token_file = tmp_path / "grafana-token"
    token_file.write_text(f"{TOKEN}\n")
    token_file.chmod(0o600)

    code = main(["dashboards", "push", "--url", grafana.url, "--token-file", str(token_file),
                 "--dir", str(DASHBOARD_DIR)])

    captured = capsys.readouterr()
    assert code == 0
    assert {r.headers.get("Authorization") for r in grafana.requests} == {f"Bearer {TOKEN}"}
    assert_no_token(captured.out, captured.err)


def test_cli_push_empty_token_file(grafana, tmp_path, capsys):
    token_file = tmp_path / "grafana-token"
    token_file.write_text("\n")

    code = main(["dashboards", "push", "--url", grafana.url, "--token-file", str(token_file),
                 "--dir", str(DASHBOARD_DIR)])

    err = capsys.readouterr().err
    assert code == 2
    assert str(token_file) in err
    assert grafana.requests == []


def test_cli_push_rejects_token_flag(grafana, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["dashboards", "push", "--url", grafana.url, "--token", TOKEN])

    captured = capsys.readouterr()
    assert raised.value.code == 2
    assert "--token-file" in captured.err
    assert_no_token(captured.out, captured.err)
    assert grafana.requests == []


def test_cli_push_help_has_no_token_flag(capsys):
    with pytest.raises(SystemExit):
        main(["dashboards", "push", "--help"])

    help_text = capsys.readouterr().out
    assert "--token-file" in help_text
    assert not re.search(r"--token\b(?!-)", help_text)


def _run_rlkd(*args: str, token: str) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).parent / "rlkd"
    assert executable.exists(), f"rlkd entry point not found next to {sys.executable}; run pip install -e ."
    env = {name: value for name, value in os.environ.items() if name not in PROXY_VARIABLES}
    env.update({"GRAFANA_TOKEN": token, "NO_PROXY": "127.0.0.1,localhost"})
    return subprocess.run([str(executable), *args], capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                          timeout=120)


def test_cli_subprocess_push(grafana):
    result = _run_rlkd("dashboards", "push", "--url", grafana.url, "-v", token=TOKEN)

    assert result.returncode == 0, result.stderr
    assert "dashboard 'rlkd run'" in result.stdout
    assert {r.headers.get("Authorization") for r in grafana.requests} == {f"Bearer {TOKEN}"}
    assert_no_token(result.stdout, result.stderr)


def test_cli_subprocess_unauthorized():
    server = FakeGrafana(fail_status=401)
    server.start()
    try:
        result = _run_rlkd("dashboards", "push", "--url", server.url, "-v", token=TOKEN)
    finally:
        server.stop()

    assert result.returncode == 2
    assert "HTTP 401" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("rlkd: error: ")
    assert_no_token(result.stdout, result.stderr)
