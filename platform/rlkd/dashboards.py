"""Grafana dashboards for rlkd runs: load and check the committed models, and push them to a Grafana server.

A dashboard file contains the bare dashboard model, as Grafana's "Export as JSON"
writes it with "Export for sharing externally" off. Every query reads its
Prometheus data source through the `datasource` template variable, so one
file works on any Grafana, and `push_dashboards` creates or updates that data
source and selects it in the variable.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlsplit, urlunsplit

from rlkd.metrics import ALL_METRICS, prometheus_name

logger = logging.getLogger(__name__)

TOKEN_ENV = "GRAFANA_TOKEN"
DATASOURCE_VARIABLE = "datasource"
DATASOURCE_REFERENCES = ("${datasource}", "$datasource")
KNOWN_METRICS = frozenset(prometheus_name(spec) for spec in ALL_METRICS)

# Values that stand in for Grafana's template variables when a query is evaluated
# outside Grafana: every run and method, and a 1-minute rate window.
EVALUATION_VALUES = {"run": ".*", "method": ".*", "__rate_interval": "1m", "__interval": "1m"}

# Grafana variable references: `$name`, `${name}` and `${name:format}`.
_VARIABLE_REFERENCE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_RLKD_METRIC = re.compile(r"\bray_rlkd_\w*")
_LANG_LEGEND = re.compile(r"\{\{\s*lang\s*\}\}")
# Grafana uids allow at most 40 letters, digits, '-' and '_'.
_UID_INVALID = re.compile(r"[^a-zA-Z0-9_-]+")
_UID_MAX_LENGTH = 40
_REQUEST_TIMEOUT_S = 10.0
_MESSAGE_MAX_CHARS = 200


class DashboardError(Exception):
    """A dashboard file that is invalid, or a Grafana request that failed."""


@dataclass(frozen=True)
class PanelQuery:
    """One Prometheus query of a dashboard panel, with template variables replaced by EVALUATION_VALUES."""

    panel_id: int
    title: str
    ref_id: str
    expr: str
    per_language: bool  # the legend names `{{lang}}`, so the query returns one series per language


@dataclass(frozen=True)
class PushedItem:
    """A data source, folder or dashboard that `push_dashboards` wrote or found on the Grafana server."""

    kind: str  # "datasource", "folder" or "dashboard"
    name: str
    uid: str
    action: str  # "created", "updated" or "found" (an existing folder is used as it is)
    detail: str = ""  # the data source's Prometheus URL, or the dashboard's version and URL

    def describe(self) -> str:
        line = f"{self.action} {self.kind} {self.name!r} (uid {self.uid})"
        return f"{line}: {self.detail}" if self.detail else line


@dataclass
class PushResult:
    """Data source, folder and dashboards that one `push_dashboards` call created, updated or found."""

    datasource: PushedItem
    folder: PushedItem
    dashboards: list[PushedItem] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [item.describe() for item in (self.datasource, self.folder, *self.dashboards)]


# Loading and checking


def load_dashboards(directory: Path) -> dict[Path, dict]:
    """Read every `*.json` dashboard model in `directory`, in name order."""
    if not directory.is_dir():
        raise DashboardError(f"dashboard folder not found: {directory} (pass --dir or run from the repository root)")
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise DashboardError(f"no *.json dashboard files in {directory}")
    return {path: _read_model(path) for path in paths}


def _read_model(path: Path) -> dict:
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        location = f"line {error.lineno}, column {error.colno}"
        raise DashboardError(f"{path}: invalid JSON at {location}: {error.msg}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DashboardError(f"cannot read dashboard file {path}: {error}") from None
    if not isinstance(model, dict):
        raise DashboardError(f"{path}: expected a dashboard object, found a JSON {type(model).__name__}")
    return model


def check_dashboards(directory: Path) -> dict[Path, dict]:
    """Load and check every dashboard in `directory`, raising one DashboardError that lists every file's problems."""
    models = load_dashboards(directory)
    failures = []
    for path, model in models.items():
        try:
            check_dashboard(model, path)
        except DashboardError as error:
            failures.append(str(error))
    if failures:
        raise DashboardError(" | ".join(failures))
    return models


def check_dashboard(model: dict, path: Path | str) -> None:
    """Raise DashboardError listing every rule the dashboard model breaks, naming the file and each panel."""
    problems = _dashboard_problems(model)
    for panel in iter_panels(model):
        problems += [f"{_panel_label(panel)}: {problem}" for problem in _panel_problems(panel)]
    problems += _panel_id_problems(model)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise DashboardError(f"{path}: {count}: " + "; ".join(problems))


def _dashboard_problems(model: dict) -> list[str]:
    problems = []
    if "dashboard" in model and "panels" not in model:
        problems.append('the model is wrapped in {"dashboard": ...}, so store the bare dashboard object instead')
    if model.get("id") is not None:
        problems.append(f'"id" is {model["id"]!r}, must be null so that Grafana assigns its own')
    if not model.get("uid"):
        problems.append('"uid" is missing, so every push would create another copy of the dashboard')
    variables = _template_variables(model)
    if not any(v.get("name") == DATASOURCE_VARIABLE and v.get("type") == "datasource" for v in variables):
        problems.append(f'no template variable "{DATASOURCE_VARIABLE}" of type datasource')
    for variable in variables:
        if variable.get("type") == "query":
            problem = _datasource_problem(variable.get("datasource"))
            if problem:
                problems.append(f"template variable {variable.get('name')!r}: {problem}")
    return problems


def _panel_problems(panel: dict) -> list[str]:
    problems = []
    datasource_problem = _datasource_problem(panel.get("datasource"))
    if datasource_problem:
        problems.append(datasource_problem)
    targets = panel.get("targets") or []
    if not targets and panel.get("type") not in ("row", "text"):
        problems.append("no targets")
    for target in targets:
        problems += [f"target {target.get('refId', '?')}: {problem}" for problem in _target_problems(target)]
    return problems


def _target_problems(target: dict) -> list[str]:
    problems = []
    datasource_problem = _datasource_problem(target.get("datasource"))
    if datasource_problem:
        problems.append(datasource_problem)
    expr = target.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        problems.append('"expr" is empty')
        return problems
    unknown = sorted(set(_RLKD_METRIC.findall(expr)) - KNOWN_METRICS)
    if unknown:
        problems.append(f"unknown metric {', '.join(unknown)} (not in rlkd.metrics.ALL_METRICS)")
    return problems


def _datasource_problem(datasource: Any) -> str | None:
    """Describe a data source reference other than the `datasource` variable, or return None."""
    if datasource is None:
        return None
    uid = datasource.get("uid") if isinstance(datasource, dict) else datasource
    if uid in DATASOURCE_REFERENCES:
        return None
    return f'datasource uid is {uid!r}, not "${{{DATASOURCE_VARIABLE}}}", so it works on only one Grafana'


def _panel_id_problems(model: dict) -> list[str]:
    problems = []
    seen: set[Any] = set()
    for panel in iter_panels(model):
        panel_id = panel.get("id")
        if not isinstance(panel_id, int) or isinstance(panel_id, bool):
            problems.append(f"{_panel_label(panel)}: id must be an integer")
        elif panel_id in seen:
            problems.append(f"{_panel_label(panel)}: duplicate panel id {panel_id}")
        seen.add(panel_id)
    return problems


def _template_variables(model: dict) -> list[dict]:
    return [v for v in (model.get("templating") or {}).get("list") or [] if isinstance(v, dict)]


def _panel_label(panel: dict) -> str:
    return f"panel {panel.get('id')!r} {panel.get('title', '')!r}"


def iter_panels(model: dict) -> Iterator[dict]:
    """Yield every panel, including those nested in a collapsed row's `panels`."""
    for panel in model.get("panels") or []:
        if not isinstance(panel, dict):
            continue
        yield panel
        yield from (child for child in panel.get("panels") or [] if isinstance(child, dict))


def panel_queries(model: dict) -> list[PanelQuery]:
    """List every target's query, with the template variables of EVALUATION_VALUES replaced for Prometheus."""
    queries = []
    for panel in iter_panels(model):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                continue
            queries.append(PanelQuery(
                panel_id=panel.get("id"),
                title=panel.get("title", ""),
                ref_id=target.get("refId", ""),
                expr=_expand_variables(expr),
                per_language=bool(_LANG_LEGEND.search(target.get("legendFormat") or "")),
            ))
    return queries


def _expand_variables(expr: str) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return EVALUATION_VALUES.get(name, match.group(0))

    return _VARIABLE_REFERENCE.sub(replace, expr)


def count_panels(model: dict) -> int:
    """Count the panels that show data, leaving out rows."""
    return sum(1 for panel in iter_panels(model) if panel.get("type") != "row")


# The Grafana token


def read_token(token_file: Path | None) -> str:
    """Read the Grafana service-account token from `token_file`, or else from $GRAFANA_TOKEN."""
    if token_file is not None:
        return _read_token_file(token_file)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise DashboardError(f"no Grafana token: set {TOKEN_ENV} or pass --token-file FILE "
                             "(a Grafana service-account token with the Admin role)")
    return token


def _read_token_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise DashboardError(f"cannot read Grafana token file {path}: {reason}") from None
    token = text.strip()
    if not token:
        raise DashboardError(f"Grafana token file is empty: {path}")
    if any(character.isspace() for character in token):
        raise DashboardError(f"Grafana token file {path} contains more than one word, "
                             "but it must contain only the token")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning("Grafana token file %s is readable by other users (mode %o). Run: chmod 600 %s",
                       path, stat.S_IMODE(mode), path)
    return token


# Pushing to Grafana


def push_dashboards(url: str, token: str, directory: Path, *, prometheus_url: str = "http://127.0.0.1:9090",
                    datasource_name: str = "rlkd-prometheus", folder: str = "rlkd") -> PushResult:
    """Create or update the Prometheus data source and the folder on Grafana, then upload every checked dashboard.

    Every dashboard is checked before the first request, so a bad file changes
    nothing on the server. Dashboards are uploaded with `overwrite`, which
    replaces the server's copy of the same uid, including edits made in the UI.
    """
    from grafana_client import GrafanaApi
    from grafana_client.client import TokenAuth

    models = check_dashboards(directory)
    grafana_url = _display_url(url, "Grafana URL")
    _display_url(prometheus_url, "Prometheus URL")
    _check_token_characters(token)
    api = GrafanaApi.from_url(url, credential=TokenAuth(token), timeout=_REQUEST_TIMEOUT_S)

    with _grafana_errors(grafana_url, token, "checking the server"):
        _check_grafana(api, grafana_url)
    with _grafana_errors(grafana_url, token, f"creating or updating data source {datasource_name!r}"):
        datasource = _ensure_datasource(api, datasource_name, prometheus_url)
    with _grafana_errors(grafana_url, token, f"finding or creating folder {folder!r}"):
        target_folder = _ensure_folder(api, folder)
    dashboards = []
    for path, model in models.items():
        with _grafana_errors(grafana_url, token, f"uploading {path}"):
            dashboards.append(_upload_dashboard(api, grafana_url, path, model, datasource, target_folder))
    return PushResult(datasource, target_folder, dashboards)


def _check_token_characters(token: str) -> None:
    # An HTTP header cannot carry whitespace or non-ASCII text, and the error the HTTP library would raise may quote it.
    if not token or not token.isascii() or any(character.isspace() for character in token):
        raise DashboardError("the Grafana token is empty or contains whitespace or non-ASCII characters")


def _check_grafana(api, grafana_url: str) -> None:
    """Fail early with a clear message when the URL is not a Grafana server."""
    # grafana-client 5.1.4's health.check() calls .get() on the response, which fails on a text/html page,
    # so the settings endpoint it reads is requested directly.
    settings = api.client.GET("/frontend/settings")
    if not isinstance(settings, dict) or "buildInfo" not in settings:
        raise DashboardError(f"{grafana_url} does not look like Grafana: /api/frontend/settings has no buildInfo")
    version = (settings.get("buildInfo") or {}).get("version", "(unknown version)")
    logger.info("connected to Grafana %s at %s", version, grafana_url)


def _display_url(url: str, label: str) -> str:
    """Validate an http(s) URL and return it without user info, query or fragment, fit for messages."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DashboardError(f"invalid {label} {url!r}: expected http://HOST:PORT or https://HOST:PORT")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


@contextlib.contextmanager
def _grafana_errors(grafana_url: str, token: str, step: str) -> Iterator[None]:
    """Turn grafana-client and HTTP errors into one-line DashboardErrors without the token.

    The original exception is not chained, because its text or response may echo
    request headers or the server's message, and callers may log tracebacks.
    """
    from grafana_client.client import GrafanaException, GrafanaTimeoutError
    from niquests.exceptions import InvalidJSONError, RequestException

    try:
        yield
    except GrafanaTimeoutError:
        reason = f"no response within {_REQUEST_TIMEOUT_S:g} s"
    except GrafanaException as error:
        reason = _grafana_reason(error)
    except InvalidJSONError:
        reason = "the response is not JSON (is the URL a Grafana server?)"
    except RequestException as error:
        reason = f"connection failed: {_connection_reason(error)}"
    else:
        return
    # The token is removed before shortening, so that no part of it can remain.
    reason = _shorten(_scrub(reason, token))
    raise DashboardError(f"Grafana request to {grafana_url} failed while {_scrub(step, token)}: {reason}") from None


def _grafana_reason(error) -> str:
    status = error.status_code
    detail = _response_message(error.response) or str(error.message)
    if status == 401:
        return f"HTTP 401 Unauthorized: {detail} (check the token)"
    if status == 403:
        return (f"HTTP 403 Forbidden: {detail} (data sources need a token with the Admin role, "
                "folders and dashboards the Editor role)")
    if status:
        return f"HTTP {status}: {detail}"
    return " ".join(detail.split())


def _response_message(response: Any) -> str:
    """Return Grafana's error message, or a non-JSON body, on one line."""
    if isinstance(response, dict):
        response = response.get("message", "")
    return " ".join(str(response or "").split())


def _shorten(text: str) -> str:
    return text if len(text) <= _MESSAGE_MAX_CHARS else text[:_MESSAGE_MAX_CHARS] + "..."


def _connection_reason(error: BaseException) -> str:
    """Find the operating system's reason (such as 'Connection refused') in the exception chain."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return " ".join(str(error).split()) or type(error).__name__


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "<token>") if token else text


def _uid_for(name: str) -> str:
    return _UID_INVALID.sub("-", name).strip("-")[:_UID_MAX_LENGTH] or "rlkd"


def _get_or_none(get, *args) -> dict | None:
    """Call a grafana-client getter and return None where Grafana returns 404 Not Found."""
    from grafana_client.client import GrafanaClientError

    try:
        return get(*args)
    except GrafanaClientError as error:
        if error.status_code == 404:
            return None
        raise


def _ensure_datasource(api, name: str, prometheus_url: str) -> PushedItem:
    uid = _uid_for(name)
    existing = (_get_or_none(api.datasource.get_datasource_by_uid, uid)
                or _get_or_none(api.datasource.get_datasource_by_name, quote(name, safe="")))
    settings = {"name": name, "type": "prometheus", "access": "proxy", "url": prometheus_url, "isDefault": False,
                "jsonData": {"httpMethod": "POST"}}

    if existing is None:
        api.datasource.create_datasource({**settings, "uid": uid})
        logger.info("created Grafana data source %s (uid %s) for %s", name, uid, prometheus_url)
        return PushedItem("datasource", name, uid, "created", prometheus_url)

    if existing.get("type") != "prometheus":
        raise DashboardError(f"Grafana data source {existing.get('name')!r} (uid {existing.get('uid')}) has type "
                             f"{existing.get('type')!r}, not prometheus. Pass another --datasource-name.")
    # A PUT replaces the whole data source, so settings made on the server (such as basic auth) are carried over.
    body = {**existing, **settings, "jsonData": {**(existing.get("jsonData") or {}), **settings["jsonData"]}}
    api.datasource.update_datasource_by_uid(existing["uid"], body)
    logger.info("updated Grafana data source %s (uid %s) to %s", name, existing["uid"], prometheus_url)
    return PushedItem("datasource", name, existing["uid"], "updated", prometheus_url)


def _ensure_folder(api, title: str) -> PushedItem:
    uid = _uid_for(title)
    folders = api.folder.get_all_folders() or []
    match = next((f for f in folders if f.get("uid") == uid), None) or next(
        (f for f in folders if f.get("title") == title), None)
    if match is not None:
        return PushedItem("folder", match.get("title", title), match["uid"], "found")

    created = api.folder.create_folder(title, uid=uid)
    logger.info("created Grafana folder %s (uid %s)", title, created.get("uid", uid))
    return PushedItem("folder", title, created.get("uid", uid), "created")


def _upload_dashboard(api, grafana_url: str, path: Path, model: dict, datasource: PushedItem,
                      folder: PushedItem) -> PushedItem:
    payload = {
        "dashboard": _select_datasource(model, datasource),
        "folderUid": folder.uid,
        "overwrite": True,
        "message": f"rlkd dashboards push of {path.name}",
    }
    response = api.dashboard.update_dashboard(payload) or {}
    version = response.get("version")
    # Grafana numbers a dashboard's versions from 1, so version 1 is a dashboard that did not exist before.
    action = "created" if version == 1 else "updated"
    link = _dashboard_link(grafana_url, response.get("url", ""))
    logger.info("%s Grafana dashboard %s (uid %s) from %s: %s",
                action, model.get("title"), model.get("uid"), path, link)
    return PushedItem("dashboard", model.get("title", path.stem), response.get("uid", model.get("uid", "")), action,
                      f"version {version}, {link}")


def _select_datasource(model: dict, datasource: PushedItem) -> dict:
    """Copy the model with the `datasource` variable set to the pushed data source, so the dashboard opens with data."""
    dashboard = copy.deepcopy(model)
    dashboard["id"] = None
    for variable in _template_variables(dashboard):
        if variable.get("name") == DATASOURCE_VARIABLE and variable.get("type") == "datasource":
            variable["current"] = {"selected": True, "text": datasource.name, "value": datasource.uid}
    return dashboard


def _dashboard_link(grafana_url: str, dashboard_path: str) -> str:
    """Join the server's dashboard path to the Grafana URL.

    The path already starts with the sub-path that Grafana serves under, if any.
    """
    if not dashboard_path:
        return grafana_url
    parts = urlsplit(grafana_url)
    return urlunsplit((parts.scheme, parts.netloc, dashboard_path, "", ""))
