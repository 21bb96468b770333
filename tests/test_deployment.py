"""The deployment artifacts agree with the server they deploy.

The Dockerfile, deploy/compose.yaml, deploy/nginx.conf and deploy/kubernetes/ are read as
files and checked against the server's own parser, settings, routes and metrics. Nothing here
needs docker or a cluster (`kubectl kustomize` renders offline, when kubectl is installed).
"""

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

import bot
from pipelines.declaration import load_declarations
from records.metrics import MULTIPROCESS_DIR_VARIABLE, CallMetrics
from server.app import create_app
from server.settings import CALLS_PER_WORKER, Settings
from server.twilio_urls import MEDIA_PATH

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
IMAGE_DIR = "/app"  # the Dockerfile's WORKDIR, where the checkout is copied
# After DRAIN_TIMEOUT_SECS, the server still says its goodbyes and hangs up (20 s), cancels
# what is left (5 s) and lets uvicorn shut down (5 s): README asks for 30 s on top.
DRAIN_MARGIN_SECS = 30


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(keyword.upper(), rest.strip()) for keyword, rest in instructions]


def instruction(keyword: str) -> str:
    """The arguments of the last `keyword` instruction (the one that takes effect)."""
    found = [rest for kw, rest in dockerfile() if kw == keyword]
    assert found, f"the Dockerfile has no {keyword}"
    return found[-1]


def image_env() -> dict[str, str]:
    """The variables the Dockerfile's ENV sets."""
    return dict(re.findall(r"(\w+)=(\S+)", instruction("ENV")))


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's command, exec form."""
    _options, _, command = instruction("HEALTHCHECK").partition("CMD")
    return json.loads(command)


def image_path(path: str) -> Path:
    """Where a path inside the image comes from in this checkout."""
    return ROOT / Path(path).relative_to(IMAGE_DIR) if path.startswith("/") else ROOT / path


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def bot_services() -> dict[str, dict]:
    """The compose services that run the server (built from this Dockerfile)."""
    services = compose()["services"]
    return {name: s for name, s in services.items() if s.get("build", {}).get("context") == ".."}


def kubernetes_documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d]


def deployment() -> dict:
    (document,) = kubernetes_documents("deployment.yaml")
    return document


def bot_container() -> dict:
    (container,) = deployment()["spec"]["template"]["spec"]["containers"]
    return container


def container_env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in bot_container()["env"]}


def server_variables() -> set[str]:
    """Every variable the server reads: its settings, and the others .env.example documents."""
    documented = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    return {name.upper() for name in Settings.model_fields} | set(documented)


def default_drain_secs() -> float:
    return Settings.model_fields["drain_timeout_secs"].default


def seconds(duration: str) -> float:
    """A compose duration such as `70s` or `1m30s`, in seconds."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, f"not a duration: {duration!r}"
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


@pytest.fixture
def app_routes(tmp_path) -> set[str]:
    """The paths the real FastAPI app serves."""
    settings = Settings(
        _env_file=None,
        public_url="https://bot.example.com",
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="test-auth-token",
        deepgram_api_key="test-deepgram-key",
        openai_api_key="test-openai-key",
        data_dir=tmp_path,
    )
    app = create_app(settings, load_declarations(), admission_dir=tmp_path / "calls")
    return {route.path for route in app.routes if hasattr(route, "path")}


# The image


def test_the_image_runs_the_server_as_make_run_does(monkeypatch):
    command = json.loads(instruction("CMD"))
    recipe = re.search(r"^run:.*\n\t\$\(PY\) (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile's run target is not `$(PY) <script> <command>`"
    assert command == ["python", *shlex.split(recipe[1])]
    assert not [kw for kw, _ in dockerfile() if kw == "ENTRYPOINT"]
    assert (ROOT / command[1]).resolve() == Path(bot.__file__).resolve()
    assert instruction("WORKDIR") == IMAGE_DIR

    # The image's arguments, through the entry point's own parser and dispatch.
    served = []
    monkeypatch.setattr(sys, "argv", command[1:])
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    monkeypatch.setattr(bot, "configure_logging", lambda level: None)
    monkeypatch.setattr(bot, "serve", lambda args: served.append(args) or 0)
    assert bot.main() == 0
    (args,) = served
    assert (args.command, args.dev, args.host) == ("serve", False, "0.0.0.0")


def test_the_image_exposes_the_port_the_server_listens_on():
    port = Settings.model_fields["port"].default
    assert instruction("EXPOSE") == str(port)
    assert "PORT" not in image_env()  # the server's default, or the environment's


def test_the_health_check_asks_the_servers_health_route(app_routes):
    command = healthcheck_command()
    assert command[0] == "python"
    script = image_path(command[1])
    source = script.read_text()
    assert re.search(r'^HEALTH_PATH = "([^"]+)"', source, re.M)[1] in app_routes
    default = re.search(r"^DEFAULT_PORT = (\d+)", source, re.M)[1]
    assert int(default) == Settings.model_fields["port"].default
    assert "os.environ.get('PORT')" in source


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_health_check_passes_while_taking_calls_and_fails_while_draining(status, healthy):
    asked = []

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        command = healthcheck_command()
        done = subprocess.run(
            [sys.executable, str(image_path(command[1])), *command[2:]],
            env={"PORT": str(server.server_address[1])},
            capture_output=True,
            timeout=30,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert asked == ["/health"]
    assert (done.returncode == 0) == healthy


def test_the_health_check_fails_when_nothing_listens():
    command = healthcheck_command()
    with HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]
    done = subprocess.run(
        [sys.executable, str(image_path(command[1]))],
        env={"PORT": str(port)},
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 1


def test_the_image_runs_as_a_non_root_user():
    user = instruction("USER")
    uid = user.split(":")[0]
    assert uid not in ("root", "0") and uid.isdigit()  # numeric: runAsNonRoot can check it
    keywords = [kw for kw, _ in dockerfile()]
    assert keywords.index("USER") < keywords.index("CMD")
    assert not [kw for kw in keywords[keywords.index("USER") :] if kw in ("RUN", "COPY")]
    pod = deployment()["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert str(pod["runAsUser"]) == uid


def test_the_image_installs_the_locked_dependencies_as_the_makefile_does():
    runs = " ".join(rest for kw, rest in dockerfile() if kw == "RUN")
    makefile = (ROOT / "Makefile").read_text()
    assert "uv pip sync" in makefile and "requirements.lock" in makefile
    assert re.search(r"uv pip sync .*requirements\.lock", runs)
    assert "pip install" in runs and " uv" in runs


def test_the_models_the_image_checks_at_build_time_load_here():
    """The build's model check, run in this venv: both models are files of the locked wheels."""
    (check,) = [rest for kw, rest in dockerfile() if kw == "RUN" and "shared_session" in rest]
    code = shlex.split(check.split("&&")[0])
    assert code[:2] == ["python", "-c"]
    assert "shared_model()" in code[2] and "shared_session()" in code[2]
    done = subprocess.run(
        [sys.executable, "-c", code[2]], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves `path` out: the last pattern matching it or a parent wins.

    Patterns are anchored at the context's root, `**/` matches at any depth. fnmatch's `*` also
    crosses `/` (Docker's does not), so this errs toward leaving out, never toward keeping.
    """
    candidates = [path, *(str(p) for p in Path(path).parents if str(p) != ".")]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if pattern.startswith("**/"):
            pattern = "*" + pattern.removeprefix("**")
            candidates_here = [*candidates, *(f"/{c}" for c in candidates)]
        else:
            candidates_here = candidates
        if any(fnmatch.fnmatch(c, pattern) for c in candidates_here):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_the_server_and_leaves_out_secrets_and_state():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    command = healthcheck_command()
    needed = [
        "requirements.lock",
        json.loads(instruction("CMD"))[1],
        str(Path(command[1]).relative_to(IMAGE_DIR)),
        "pipelines/default.toml",
        "pipelines/routes.toml",
        "server/app.py",
        "server/console/index.html",
        "models/smart_turn.py",
        "recordings/__init__.py",
        ".env.example",
    ]
    assert [path for path in needed if dockerignored(path, patterns)] == []
    kept_out = [".env", ".env.local", ".venv/bin/python", ".git/HEAD", "data/calls.db"]
    assert [path for path in kept_out if not dockerignored(path, patterns)] == []


def test_the_data_directory_is_a_volume_the_server_writes_sqlite_to():
    assert instruction("VOLUME") == image_env()["DATA_DIR"]
    assert "data_dir" in Settings.model_fields


# Compose and its load balancer


def test_compose_runs_several_instances_on_one_postgresql():
    services = compose()["services"]
    bots = bot_services()
    assert len(bots) >= 2
    (postgres,) = [s for s in services.values() if s.get("image", "").startswith("postgres")]
    user, database = (
        postgres["environment"]["POSTGRES_USER"],
        postgres["environment"]["POSTGRES_DB"],
    )
    postgres_name = next(name for name, s in services.items() if s is postgres)
    for name, service in bots.items():
        url = service["environment"]["DATABASE_URL"]
        assert re.fullmatch(rf"postgresql://{user}:.+@{postgres_name}:5432/{database}", url), name
        assert service["depends_on"][postgres_name]["condition"] == "service_healthy"
        assert service["env_file"] == "../.env"
    assert "healthcheck" in postgres


def test_compose_names_only_variables_the_server_reads():
    unknown = {
        f"{name}: {variable}"
        for name, service in bot_services().items()
        for variable in service.get("environment", {})
        if variable not in server_variables()
    }
    assert unknown == set()


def test_compose_gives_each_instance_time_to_drain():
    for name, service in bot_services().items():
        drain = float(service["environment"].get("DRAIN_TIMEOUT_SECS", default_drain_secs()))
        assert seconds(service["stop_grace_period"]) >= drain + DRAIN_MARGIN_SECS, name
        assert service["healthcheck"]["test"] == ["CMD", *healthcheck_command()], name
    (nginx,) = [s for s in compose()["services"].values() if s.get("image", "").startswith("nginx")]
    assert "depends_on" not in nginx  # stopped after the bots, it would cut their calls
    longest = max(seconds(s["stop_grace_period"]) for s in bot_services().values())
    assert seconds(nginx["stop_grace_period"]) >= longest


def nginx_config() -> str:
    (nginx,) = [s for s in compose()["services"].values() if s.get("image", "").startswith("nginx")]
    (mount,) = [v for v in nginx["volumes"] if "nginx.conf" in v]
    return (DEPLOY / mount.split(":")[0]).read_text()


def test_nginx_balances_every_instance_on_the_port_it_listens_on():
    config = nginx_config()
    upstream = re.search(r"upstream (\w+) \{(.*?)\}", config, re.S)
    servers = re.findall(r"^\s*server ([\w.-]+):(\d+)", upstream[2], re.M)
    expected = {
        (name, service["environment"].get("PORT", str(Settings.model_fields["port"].default)))
        for name, service in bot_services().items()
    }
    assert set(servers) == expected
    assert config.count(f"proxy_pass http://{upstream[1]};") >= 2


def test_nginx_passes_the_media_websocket_upgrade_for_a_whole_call():
    config = nginx_config()
    media = re.search(rf"location {re.escape(MEDIA_PATH)}/ \{{(.*?)\}}", config, re.S)
    assert media, f"no location for {MEDIA_PATH}/"
    assert "proxy_http_version 1.1;" in config
    assert re.search(r"proxy_set_header Upgrade \$http_upgrade;", config)
    assert re.search(r"proxy_set_header Connection \$connection_upgrade;", config)
    longest_call = max(d.call.max_secs for d in load_declarations().values())
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        value = re.search(rf"{timeout} (\d+)s;", media[1])
        assert value and int(value[1]) > longest_call, timeout
    # A full instance refuses a stream with 503: nginx must not count that as it failing.
    assert not re.search(r"^\s*proxy_next_upstream [^;]*http_503", config, re.M)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_config(tmp_path):
    """`nginx -t` on the config, its instances on loopback (`resolve` needs nginx 1.27.3)."""
    config = re.sub(r"server [\w.-]+:(\d+) resolve;", r"server 127.0.0.1:\1;", nginx_config())
    (tmp_path / "voicebot.conf").write_text(config)
    main = "pid nginx.pid;\nevents {}\nhttp {\n    access_log off;\n    include voicebot.conf;\n}\n"
    (tmp_path / "nginx.conf").write_text(main)
    done = subprocess.run(
        ["nginx", "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


# Kubernetes


def test_every_manifest_parses_and_kustomization_lists_files_that_exist():
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document is None or "apiVersion" in document or "rules" in document, path
    (kustomization,) = kubernetes_documents("kustomization.yaml")
    assert all((KUBERNETES / name).exists() for name in kustomization["resources"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_renders_the_kustomization_without_a_cluster():
    done = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(done.stdout)}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler"} <= kinds


def test_the_grace_period_outlasts_the_drain():
    spec = deployment()["spec"]["template"]["spec"]
    drain = float(container_env().get("DRAIN_TIMEOUT_SECS", default_drain_secs()))
    pre_stop = bot_container()["lifecycle"]["preStop"]["exec"]["command"]
    pause = float(pre_stop[1]) if pre_stop[0] == "sleep" else 0.0
    assert spec["terminationGracePeriodSeconds"] >= pause + drain + DRAIN_MARGIN_SECS


def test_readiness_is_the_health_route_and_liveness_spares_a_busy_or_draining_pod(app_routes):
    container = bot_container()
    readiness = container["readinessProbe"]["httpGet"]
    assert readiness["path"] in app_routes
    assert container["startupProbe"]["httpGet"]["path"] in app_routes
    liveness = container["livenessProbe"]
    assert "httpGet" not in liveness  # /health answers 503 for the whole drain
    assert liveness["timeoutSeconds"] * liveness["failureThreshold"] >= 10
    (port,) = container["ports"]
    for probe in ("readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == port["name"]
    assert liveness["tcpSocket"]["port"] == port["name"]
    env = container_env()
    assert port["containerPort"] == int(env.get("PORT", Settings.model_fields["port"].default))


def test_each_pod_runs_as_many_workers_as_cores_it_requests():
    env = container_env()
    assert int(env["WORKERS"]) >= 1  # unset (0), the server counts the node's cores
    assert float(bot_container()["resources"]["requests"]["cpu"]) == int(env["WORKERS"])


def test_the_service_reaches_the_container_port():
    (service,) = kubernetes_documents("service.yaml")
    names = {p["name"] for p in bot_container()["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_manifests_name_only_variables_the_server_reads():
    (secret,) = kubernetes_documents("secret.example.yaml")
    named = set(container_env()) | set(secret["stringData"])
    commented = re.findall(
        r"^\s*#\s*([A-Z][A-Z0-9_]+):", (KUBERNETES / "secret.example.yaml").read_text(), re.M
    )
    assert (named | set(commented)) - server_variables() == set()
    assert {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "DATABASE_URL"} <= set(secret["stringData"])
    (source,) = bot_container()["envFrom"]
    assert source["secretRef"]["name"] == secret["metadata"]["name"]


def test_the_autoscaler_scales_on_a_gauge_the_metrics_route_exports(monkeypatch):
    (hpa,) = kubernetes_documents("hpa.yaml")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment()["metadata"]["name"]
    (metric,) = hpa["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]

    monkeypatch.delenv(MULTIPROCESS_DIR_VARIABLE, raising=False)
    exported = CallMetrics().render().decode()
    assert f"# TYPE {name} gauge" in exported

    (values,) = kubernetes_documents("prometheus-adapter-values.yaml")
    (rule,) = values["rules"]["custom"]
    assert rule["seriesQuery"].startswith(name + "{")
    assert re.fullmatch(rule["name"]["matches"], name) and rule["name"]["as"] == name
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}

    per_pod = CALLS_PER_WORKER * int(container_env()["WORKERS"])
    assert 0 < float(metric["pods"]["target"]["averageValue"]) < per_pod


def test_max_calls_counts_every_pod_at_the_largest_scale():
    """With DATABASE_URL, MAX_CALLS is the limit of all instances together."""
    (hpa,) = kubernetes_documents("hpa.yaml")
    env = container_env()
    per_pod = CALLS_PER_WORKER * int(env["WORKERS"])
    assert int(env["MAX_CALLS"]) == per_pod * hpa["spec"]["maxReplicas"]


def test_max_calls_counts_every_compose_instance():
    """With DATABASE_URL, MAX_CALLS is the limit of all instances together."""
    bots = bot_services().values()
    total = sum(CALLS_PER_WORKER * int(s["environment"]["WORKERS"]) for s in bots)
    assert {int(s["environment"]["MAX_CALLS"]) for s in bots} == {total}


def test_the_ingress_keeps_a_calls_websocket_open_and_routes_to_the_service():
    (ingress,) = kubernetes_documents("ingress.yaml")
    annotations = ingress["metadata"]["annotations"]
    longest_call = max(d.call.max_secs for d in load_declarations().values())
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) > longest_call
    (service,) = kubernetes_documents("service.yaml")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"]["name"] == service["metadata"]["name"]
    assert rule["host"] in container_env()["PUBLIC_URL"]
