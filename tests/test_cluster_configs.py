"""Configs under cluster/ parse and carry the fields that Ray, KubeRay, Prometheus and Grafana require.

No test here starts Ray: the shell scripts run against a fake `ray` that records its arguments.
"""

import copy
import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import ray
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER_DIR = REPO_ROOT / "cluster"
YAML_FILES = sorted([*CLUSTER_DIR.rglob("*.yaml"), *CLUSTER_DIR.rglob("*.yml")])
SHELL_SCRIPTS = sorted(CLUSTER_DIR.rglob("*.sh"))
START_SCRIPT = CLUSTER_DIR / "start-local-head.sh"
STOP_SCRIPT = CLUSTER_DIR / "stop-local-head.sh"

# Ray 2.60 writes this file under its temp dir (ray._private.ray_constants.PROMETHEUS_SERVICE_DISCOVERY_FILE).
RAY_SERVICE_DISCOVERY_FILE = "/tmp/ray/prom_metrics_service_discovery.json"
# The image's WORKDIR, where cluster/Dockerfile copies the repository.
IMAGE_APP_DIR = "/app/"
DATA_MOUNT_PATH = "/mnt/rlkd"


def relative_name(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def load_yaml(relative_path: str) -> dict:
    with open(REPO_ROOT / relative_path, encoding="utf-8") as file:
        return yaml.safe_load(file)


# Every YAML file


def test_cluster_yaml_files_found():
    names = {relative_name(path) for path in YAML_FILES}

    assert "cluster/autoscaler.yaml" in names
    assert "cluster/kuberay/raycluster.yaml" in names
    assert "cluster/kuberay/rayjob.yaml" in names
    assert "cluster/prometheus/prometheus.yml" in names


@pytest.mark.parametrize("path", YAML_FILES, ids=relative_name)
def test_yaml_file_is_mapping(path):
    with open(path, encoding="utf-8") as file:
        data = yaml.safe_load(file)

    assert isinstance(data, dict), f"{relative_name(path)} holds {type(data).__name__}, expected a mapping"


# Ray cluster launcher


@pytest.fixture(scope="module")
def autoscaler() -> dict:
    return load_yaml("cluster/autoscaler.yaml")


def worker_type_names(config: dict) -> list[str]:
    return [name for name in config["available_node_types"] if name != config["head_node_type"]]


def test_autoscaler_top_level_fields(autoscaler):
    assert autoscaler["cluster_name"] == "rlkd"
    assert autoscaler["provider"]["type"] == "aws"
    assert autoscaler["provider"]["region"]
    assert autoscaler["auth"]["ssh_user"]
    assert isinstance(autoscaler["max_workers"], int)


def test_autoscaler_node_types_complete(autoscaler):
    node_types = autoscaler["available_node_types"]

    assert node_types
    for name, node_type in node_types.items():
        for field in ("node_config", "resources", "min_workers", "max_workers"):
            assert field in node_type, f"node type {name} has no {field}"
        assert node_type["node_config"].get("InstanceType"), f"node type {name} has no InstanceType"
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"] <= autoscaler["max_workers"], name


def test_autoscaler_head_type_is_cpu_only(autoscaler):
    head_type = autoscaler["head_node_type"]

    assert head_type in autoscaler["available_node_types"]
    head_resources = autoscaler["available_node_types"][head_type]["resources"]
    assert head_resources.get("GPU", 0) == 0
    assert head_resources.get("CPU", 0) > 0


def test_autoscaler_has_gpu_worker_type(autoscaler):
    gpu_types = [
        name
        for name in worker_type_names(autoscaler)
        if autoscaler["available_node_types"][name]["resources"].get("GPU", 0) >= 1
    ]

    assert gpu_types, "no worker type has GPU in its resources"
    assert any(autoscaler["available_node_types"][name]["max_workers"] > 0 for name in gpu_types)


def test_autoscaler_dashboard_on_loopback(autoscaler):
    head_commands = " ".join(autoscaler["head_start_ray_commands"])
    worker_commands = " ".join(autoscaler["worker_start_ray_commands"])

    assert "--dashboard-host=127.0.0.1" in head_commands
    assert "0.0.0.0" not in head_commands
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_commands
    assert "--metrics-export-port=8080" in head_commands
    assert "--address=$RAY_HEAD_IP:6379" in worker_commands
    assert "--metrics-export-port=8080" in worker_commands


def test_autoscaler_start_commands_keep_token_auth(autoscaler):
    start_commands = [*autoscaler["head_start_ray_commands"], *autoscaler["worker_start_ray_commands"]]
    ray_start_commands = [command for command in start_commands if "ray start" in command]

    assert len(ray_start_commands) == 2
    for command in ray_start_commands:
        assert "RAY_AUTH_MODE=token ray start" in command
    assert "~/.ray/auth_token" in autoscaler["file_mounts"]


def test_autoscaler_installs_mounted_repository(autoscaler):
    repo_mounts = {remote: local for remote, local in autoscaler["file_mounts"].items() if local == "."}

    assert len(repo_mounts) == 1
    remote_repo = next(iter(repo_mounts))
    assert f"pip install -e {remote_repo}" in autoscaler["setup_commands"]


def test_autoscaler_passes_ray_schema(autoscaler):
    # `ray up` fills in the provider's defaults and then validates with these same functions.
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(autoscaler))

    validate_config(prepared)


# KubeRay


@pytest.fixture(scope="module")
def raycluster() -> dict:
    return load_yaml("cluster/kuberay/raycluster.yaml")


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return load_yaml("cluster/kuberay/rayjob.yaml")


def kuberay_cluster_specs() -> list:
    raycluster = load_yaml("cluster/kuberay/raycluster.yaml")
    rayjob = load_yaml("cluster/kuberay/rayjob.yaml")
    return [
        pytest.param(raycluster["spec"], id="raycluster"),
        pytest.param(rayjob["spec"]["rayClusterSpec"], id="rayjob"),
    ]


def pod_specs(cluster_spec: dict) -> list[tuple[str, dict]]:
    pods = [("head", cluster_spec["headGroupSpec"]["template"]["spec"])]
    for group in cluster_spec["workerGroupSpecs"]:
        pods.append((group["groupName"], group["template"]["spec"]))
    return pods


@pytest.mark.parametrize("relative_path, kind", [
    ("cluster/kuberay/raycluster.yaml", "RayCluster"),
    ("cluster/kuberay/rayjob.yaml", "RayJob"),
])
def test_kuberay_resource_header(relative_path, kind):
    resource = load_yaml(relative_path)

    assert resource["apiVersion"] == "ray.io/v1"
    assert resource["kind"] == kind
    assert resource["metadata"]["name"]


@pytest.mark.parametrize("cluster_spec", kuberay_cluster_specs())
def test_kuberay_ray_version_matches_installed(cluster_spec):
    assert cluster_spec["rayVersion"] == ray.__version__


@pytest.mark.parametrize("cluster_spec", kuberay_cluster_specs())
def test_kuberay_head_group(cluster_spec):
    head = cluster_spec["headGroupSpec"]
    start_params = head["rayStartParams"]

    assert start_params["dashboard-host"] == "0.0.0.0"
    assert start_params["num-cpus"] == "0"
    assert start_params["metrics-export-port"] == "8080"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    assert head["template"]["spec"]["containers"][0]["image"]


@pytest.mark.parametrize("cluster_spec", kuberay_cluster_specs())
def test_kuberay_start_params_are_strings(cluster_spec):
    # The CRD types rayStartParams as map[string]string, so an unquoted number fails validation.
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]

    for group in groups:
        for key, value in group["rayStartParams"].items():
            assert isinstance(value, str), f"rayStartParams {key}: {value!r} is not a string"


@pytest.mark.parametrize("cluster_spec", kuberay_cluster_specs())
def test_kuberay_head_ports_named(cluster_spec):
    container = cluster_spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}

    assert ports == {"gcs": 6379, "dashboard": 8265, "client": 10001, "metrics": 8080}


@pytest.mark.parametrize("cluster_spec", kuberay_cluster_specs())
def test_kuberay_worker_groups(cluster_spec):
    groups = cluster_spec["workerGroupSpecs"]
    names = [group["groupName"] for group in groups]

    assert len(groups) >= 2
    assert len(set(names)) == len(names), f"duplicate groupName in {names}"
    for group in groups:
        name = group["groupName"]
        assert isinstance(group["rayStartParams"], dict), name
        assert group["template"]["spec"]["containers"][0]["image"], name
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], name


@pytest.mark.parametrize("cluster_spec", kuberay_cluster_specs())
def test_kuberay_gpu_group_requests_gpu(cluster_spec):
    gpu_groups = [
        group
        for group in cluster_spec["workerGroupSpecs"]
        if group["template"]["spec"]["containers"][0]["resources"].get("limits", {}).get("nvidia.com/gpu", 0) >= 1
    ]

    assert gpu_groups, "no worker group sets nvidia.com/gpu in its limits"
    for group in gpu_groups:
        assert group["maxReplicas"] > 0, group["groupName"]
        assert group["template"]["spec"]["containers"][0]["image"].endswith("-gpu"), group["groupName"]


@pytest.mark.parametrize("cluster_spec", kuberay_cluster_specs())
def test_kuberay_pods_mount_data_claim(cluster_spec):
    for pod_name, pod_spec in pod_specs(cluster_spec):
        claims = {
            volume["name"]: volume["persistentVolumeClaim"]["claimName"]
            for volume in pod_spec.get("volumes", [])
            if "persistentVolumeClaim" in volume
        }
        mounts = {mount["mountPath"]: mount["name"] for mount in pod_spec["containers"][0].get("volumeMounts", [])}

        assert DATA_MOUNT_PATH in mounts, f"{pod_name} pod does not mount {DATA_MOUNT_PATH}"
        assert mounts[DATA_MOUNT_PATH] in claims, f"{pod_name} pod mounts {DATA_MOUNT_PATH} from no PVC volume"


@pytest.mark.parametrize("cluster_spec", kuberay_cluster_specs())
def test_kuberay_token_auth_on(cluster_spec):
    assert cluster_spec["authOptions"]["mode"] == "token"
    assert cluster_spec["enableInTreeAutoscaling"] is True


def test_rayjob_cluster_matches_raycluster(raycluster, rayjob):
    assert rayjob["spec"]["rayClusterSpec"] == raycluster["spec"]


def test_rayjob_submission_settings(rayjob):
    spec = rayjob["spec"]

    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["ttlSecondsAfterFinished"], int)
    assert spec["ttlSecondsAfterFinished"] >= 0


def test_rayjob_runtime_env_has_no_working_dir(rayjob):
    runtime_env = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])

    assert isinstance(runtime_env, dict)
    assert "working_dir" not in runtime_env


def test_rayjob_entrypoint_runs_compare(rayjob):
    words = shlex.split(rayjob["spec"]["entrypoint"])

    assert words[0] == "python"
    assert words[1].endswith("jobs/compare.py")
    assert "--smoke-test" in words
    assert words[words.index("--data") + 1] == f"{DATA_MOUNT_PATH}/data/sentimix"
    assert words[words.index("--out") + 1].startswith(f"{DATA_MOUNT_PATH}/outputs/")
    assert "{run_id}" in words[words.index("--out") + 1]


def test_rayjob_entrypoint_paths_exist(rayjob):
    words = shlex.split(rayjob["spec"]["entrypoint"])
    job_paths = [word for word in words if "jobs/" in word]

    assert job_paths
    for word in job_paths:
        repo_path = word.removeprefix(IMAGE_APP_DIR)
        assert (REPO_ROOT / repo_path).is_file(), f"entrypoint names {word}, but {repo_path} is not in the repository"


# Prometheus


@pytest.fixture(scope="module")
def prometheus() -> dict:
    return load_yaml("cluster/prometheus/prometheus.yml")


def test_prometheus_scrapes_ray_service_discovery(prometheus):
    from ray._private.ray_constants import PROMETHEUS_SERVICE_DISCOVERY_FILE

    ray_jobs = [job for job in prometheus["scrape_configs"] if job["job_name"] == "ray"]
    assert len(ray_jobs) == 1
    files = [path for sd_config in ray_jobs[0]["file_sd_configs"] for path in sd_config["files"]]

    assert files == [RAY_SERVICE_DISCOVERY_FILE]
    assert Path(RAY_SERVICE_DISCOVERY_FILE).name == PROMETHEUS_SERVICE_DISCOVERY_FILE
    assert prometheus["global"]["scrape_interval"] == "15s"


def test_promtool_accepts_config():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not on PATH (Debian and Ubuntu ship it in the package prometheus)")

    result = subprocess.run(
        [promtool, "check", "config", "cluster/prometheus/prometheus.yml"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


# Grafana


def test_grafana_datasource_points_at_prometheus(prometheus):
    provisioning = load_yaml("cluster/grafana/provisioning/datasources/rlkd.yaml")
    datasources = provisioning["datasources"]

    assert provisioning["apiVersion"] == 1
    assert len(datasources) == 1
    datasource = datasources[0]
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == "rlkd-prometheus"
    assert datasource["url"] == "http://127.0.0.1:9090"
    assert datasource["access"] == "proxy"
    assert datasource["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]


def test_grafana_dashboard_provider_reads_files():
    provisioning = load_yaml("cluster/grafana/provisioning/dashboards/rlkd.yaml")
    providers = provisioning["providers"]

    assert provisioning["apiVersion"] == 1
    assert len(providers) == 1
    provider = providers[0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/rlkd"
    assert provider["folder"] == "rlkd"


# Dockerfile


def dockerfile_instructions() -> list[tuple[str, list[str]]]:
    """Return (instruction, arguments) pairs of cluster/Dockerfile, with continuation lines joined."""
    text = (CLUSTER_DIR / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instructions.append((instruction.upper(), shlex.split(arguments)))
    return instructions


def test_dockerfile_copy_sources_exist():
    copies = [arguments for instruction, arguments in dockerfile_instructions() if instruction == "COPY"]

    assert copies
    for arguments in copies:
        paths = [argument for argument in arguments if not argument.startswith("--")]
        sources = paths[:-1]
        assert sources, f"COPY {' '.join(arguments)} names no source"
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"COPY source {source} is not in the repository"


def test_dockerfile_base_image_matches_ray():
    instructions = dockerfile_instructions()
    build_args = dict(
        argument.split("=", 1)
        for instruction, arguments in instructions if instruction == "ARG"
        for argument in arguments if "=" in argument
    )

    assert build_args["BASE_IMAGE"] == f"rayproject/ray:{ray.__version__}-py311-cpu"
    assert ("FROM", ["${BASE_IMAGE}"]) in instructions
    assert ("WORKDIR", ["/app"]) in instructions
    assert ("ENV", ["HF_HUB_OFFLINE=1"]) in instructions


# Shell scripts


FAKE_RAY = """#!/usr/bin/env bash
# Stands in for `ray`: records each call's arguments, one per line, in $FAKE_RAY_CALLS/<subcommand>.args.
set -eu
mkdir -p "$FAKE_RAY_CALLS"
printf '%s\\n' "$@" > "$FAKE_RAY_CALLS/$1.args"
case "$1" in
    get-auth-token)
        # Ray 2.60 writes a new token with the default umask.
        token_file="$HOME/.ray/auth_token"
        if [ ! -f "$token_file" ]; then
            mkdir -p "$HOME/.ray"
            printf 'new-token' > "$token_file"
            chmod 644 "$token_file"
        fi
        cat "$token_file"
        ;;
    start)
        stat -c %a "$HOME/.ray/auth_token" > "$FAKE_RAY_CALLS/token_mode_at_start"
        printf '%s' "$PATH" > "$FAKE_RAY_CALLS/path_at_start"
        printf '%s' "${RAY_AUTH_MODE:-}" > "$FAKE_RAY_CALLS/auth_mode_at_start"
        ;;
esac
"""


class FakeRay:
    """A fake `ray` executable under tmp_path, with a HOME of its own so no real token is touched."""

    def __init__(self, tmp_path: Path):
        self.bin_dir = tmp_path / "fake-bin"
        self.bin_dir.mkdir()
        self.executable = self.bin_dir / "ray"
        self.executable.write_text(FAKE_RAY, encoding="utf-8")
        self.executable.chmod(0o755)
        self.calls = tmp_path / "calls"
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.token_file = self.home / ".ray" / "auth_token"

    def environment(self, **overrides: str) -> dict:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("RLKD_", "RAY_"))}
        env.update(HOME=str(self.home), FAKE_RAY_CALLS=str(self.calls), RLKD_RAY_BIN=str(self.executable))
        env.update(overrides)
        return env

    def run(self, script: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(script), *args], env=env if env is not None else self.environment(),
                              capture_output=True, text=True, timeout=60)

    def arguments(self, subcommand: str) -> list[str]:
        return (self.calls / f"{subcommand}.args").read_text(encoding="utf-8").splitlines()

    def recorded(self, name: str) -> str:
        return (self.calls / name).read_text(encoding="utf-8")


@pytest.fixture
def fake_ray(tmp_path) -> FakeRay:
    return FakeRay(tmp_path)


def option_value(arguments: list[str], option: str) -> str:
    assert option in arguments, f"{option} missing from {arguments}"
    return arguments[arguments.index(option) + 1]


def copy_scripts_to(repo: Path) -> Path:
    """Copy the cluster scripts into a bare repository layout at repo, and return its cluster folder."""
    cluster = repo / "cluster"
    cluster.mkdir(parents=True)
    for script in SHELL_SCRIPTS:
        shutil.copy2(script, cluster / script.name)
    return cluster


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=relative_name)
def test_shell_script_syntax(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=relative_name)
def test_shell_script_executable(script):
    assert script.stat().st_mode & stat.S_IXUSR, f"{relative_name(script)} is not executable"


def test_start_script_binds_loopback(fake_ray):
    result = fake_ray.run(START_SCRIPT)

    assert result.returncode == 0, result.stderr
    arguments = fake_ray.arguments("start")
    assert arguments[:2] == ["start", "--head"]
    assert option_value(arguments, "--node-ip-address") == "127.0.0.1"
    assert option_value(arguments, "--dashboard-host") == "127.0.0.1"
    assert option_value(arguments, "--port") == "6379"
    assert option_value(arguments, "--dashboard-port") == "8265"
    assert option_value(arguments, "--metrics-export-port") == "8080"
    assert "--num-cpus" not in arguments


def test_start_script_host_override(fake_ray):
    result = fake_ray.run(START_SCRIPT, env=fake_ray.environment(RLKD_RAY_HOST="0.0.0.0"))

    assert result.returncode == 0, result.stderr
    arguments = fake_ray.arguments("start")
    assert option_value(arguments, "--node-ip-address") == "0.0.0.0"
    assert option_value(arguments, "--dashboard-host") == "0.0.0.0"
    assert "--address http://127.0.0.1:8265" in result.stdout


def test_start_script_ports_and_cpus(fake_ray):
    env = fake_ray.environment(RLKD_RAY_PORT="6400", RLKD_DASHBOARD_PORT="8300",
                               RLKD_METRICS_PORT="8100", RLKD_NUM_CPUS="3")

    result = fake_ray.run(START_SCRIPT, env=env)

    assert result.returncode == 0, result.stderr
    arguments = fake_ray.arguments("start")
    assert option_value(arguments, "--port") == "6400"
    assert option_value(arguments, "--dashboard-port") == "8300"
    assert option_value(arguments, "--metrics-export-port") == "8100"
    assert option_value(arguments, "--num-cpus") == "3"
    assert "--address http://127.0.0.1:8300" in result.stdout


def test_start_script_prints_submit_command(fake_ray):
    result = fake_ray.run(START_SCRIPT)

    assert result.returncode == 0, result.stderr
    assert "RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265" in result.stdout
    assert "Dashboard: http://127.0.0.1:8265" in result.stdout


def test_start_script_passes_extra_args(fake_ray):
    result = fake_ray.run(START_SCRIPT, "--block", "--include-dashboard=true")

    assert result.returncode == 0, result.stderr
    assert fake_ray.arguments("start")[-2:] == ["--block", "--include-dashboard=true"]
    assert "Ray head starting" in result.stdout


def test_start_script_turns_on_token_auth(fake_ray):
    result = fake_ray.run(START_SCRIPT)

    assert result.returncode == 0, result.stderr
    assert fake_ray.arguments("get-auth-token") == ["get-auth-token", "--generate"]
    assert fake_ray.recorded("auth_mode_at_start") == "token"


def test_start_script_protects_existing_token(fake_ray):
    fake_ray.token_file.parent.mkdir()
    fake_ray.token_file.write_text("old-token", encoding="utf-8")
    fake_ray.token_file.chmod(0o644)

    result = fake_ray.run(START_SCRIPT)

    assert result.returncode == 0, result.stderr
    assert fake_ray.recorded("token_mode_at_start") == "600\n"
    assert stat.S_IMODE(fake_ray.token_file.stat().st_mode) == 0o600
    assert fake_ray.token_file.read_text(encoding="utf-8") == "old-token"


def test_start_script_protects_token_before_block(fake_ray):
    result = fake_ray.run(START_SCRIPT, "--block")

    assert result.returncode == 0, result.stderr
    assert fake_ray.recorded("token_mode_at_start") == "600\n"
    assert stat.S_IMODE(fake_ray.token_file.stat().st_mode) == 0o600


def test_start_script_rejects_disabled_auth(fake_ray):
    result = fake_ray.run(START_SCRIPT, env=fake_ray.environment(RAY_AUTH_MODE="disabled"))

    assert result.returncode == 2
    assert "RAY_AUTH_MODE=disabled is not supported" in result.stderr
    assert not (fake_ray.calls / "start.args").exists()


@pytest.mark.parametrize("variable, value", [
    ("RLKD_RAY_PORT", "abc"),
    ("RLKD_DASHBOARD_PORT", "70000"),
    ("RLKD_METRICS_PORT", "0"),
    ("RLKD_NUM_CPUS", "two"),
])
def test_start_script_rejects_invalid_setting(fake_ray, variable, value):
    result = fake_ray.run(START_SCRIPT, env=fake_ray.environment(**{variable: value}))

    assert result.returncode == 2
    assert f"invalid {variable} '{value}'" in result.stderr
    assert not (fake_ray.calls / "start.args").exists()


def test_start_script_uses_repo_venv(fake_ray, tmp_path):
    repo = tmp_path / "repo"
    cluster = copy_scripts_to(repo)
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    shutil.copy2(fake_ray.executable, venv_bin / "ray")
    env = fake_ray.environment()
    del env["RLKD_RAY_BIN"]

    result = fake_ray.run(cluster / START_SCRIPT.name, env=env)

    assert result.returncode == 0, result.stderr
    assert fake_ray.recorded("path_at_start").split(":")[0] == str(venv_bin)
    assert f"'{venv_bin / 'ray'} get-auth-token'" in result.stdout


def test_start_script_falls_back_to_path(fake_ray, tmp_path):
    cluster = copy_scripts_to(tmp_path / "repo")
    env = fake_ray.environment(PATH=f"{fake_ray.bin_dir}:{os.environ['PATH']}")
    del env["RLKD_RAY_BIN"]

    result = fake_ray.run(cluster / START_SCRIPT.name, env=env)

    assert result.returncode == 0, result.stderr
    assert fake_ray.arguments("start")[:2] == ["start", "--head"]
    assert f"'{fake_ray.executable} get-auth-token'" in result.stdout


def test_stop_script_runs_ray_stop(fake_ray):
    result = fake_ray.run(STOP_SCRIPT, "--force")

    assert result.returncode == 0, result.stderr
    assert fake_ray.arguments("stop") == ["stop", "--force"]
