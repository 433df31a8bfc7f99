"""docker-compose.yml and its Dockerfile stay true to the code: every command is a real `disc`
subcommand, every build context exists, every DISC_* variable is read by the product."""

from __future__ import annotations

import inspect
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _command(service: dict) -> list[str] | None:
    command = service.get("command")
    if command is None:
        return None
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _known_env_vars() -> set[str]:
    import disc_engine.models
    from store.settings import Settings

    known = {f"DISC_{name.upper()}" for name in Settings.model_fields}
    # Read directly from the environment by model loading, not a Settings field.
    assert "DISC_MODEL_CACHE" in inspect.getsource(disc_engine.models)
    return known | {"DISC_MODEL_CACHE"}


WORKERS = ("worker-0", "worker-1")


def test_the_stack_has_its_roles(compose):
    services = compose["services"]
    assert {"postgres", "redis", "objectstore", "store-init", "migrate", "api", *WORKERS} <= set(services)
    for name in ("postgres", "redis", "objectstore"):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
    for name in ("api", *WORKERS):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["store-init"]["condition"] == "service_completed_successfully"
    assert services["store-init"]["depends_on"]["objectstore"]["condition"] == "service_healthy"


def test_workers_share_nothing_on_disk_and_each_has_its_own_gpu(compose):
    from store.settings import Settings

    services = compose["services"]
    volumes = {name: [v.split(":")[0] for v in services[name].get("volumes", [])] for name in ("api", *WORKERS)}
    named = [v for vs in volumes.values() for v in vs]
    assert len(named) == len(set(named)), f"a volume is shared between the API and workers: {volumes}"
    devices = []
    for name in WORKERS:
        [reservation] = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert reservation["driver"] == "nvidia" and "gpu" in reservation["capabilities"]
        devices += reservation["device_ids"]
        command = services[name]["command"]
        assert command[command.index("--device") + 1].startswith("cuda")
    assert len(devices) == len(set(devices)), "two workers reserve the same GPU"
    # Everyone names the same store; the object store's own service is where the endpoint points.
    urls = {services[name]["environment"]["DISC_ARTIFACT_URL"] for name in ("api", *WORKERS)}
    [url] = urls
    assert url.startswith("s3://") and Settings(artifact_url=url).artifact_store_url == url
    endpoint = services["api"]["environment"]["AWS_ENDPOINT_URL"]
    assert endpoint.split("//")[1].split(":")[0] == "objectstore"
    for mount in services["objectstore"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).is_file(), f"the object store mounts {source}, which does not exist"


def test_every_command_is_a_real_disc_subcommand(compose):
    from disc_cli.main import build_parser

    parser = build_parser()
    seen = set()
    for name, service in compose["services"].items():
        command = _command(service)
        if command is None or command[0] != "disc":
            continue
        try:
            args = parser.parse_args(command[1:])
        except SystemExit as exc:
            pytest.fail(f"service {name}: `{' '.join(command)}` is not a valid disc command ({exc})")
        assert callable(args.func)
        seen.add(args.command)
    assert {"db", "store", "serve", "worker"} <= seen


def test_builds_point_at_real_files(compose):
    built = 0
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            continue
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
        assert context.is_dir(), f"service {name}: build context {context} does not exist"
        assert dockerfile.is_file(), f"service {name}: {dockerfile} does not exist"
        built += 1
        text = dockerfile.read_text()
        for line in text.splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                for source in line.split()[1:-1]:
                    assert (context / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"
        if isinstance(build, dict):
            declared = {line.split()[1].split("=")[0] for line in text.splitlines() if line.startswith("ARG ")}
            assert set(build.get("args", {})) <= declared, f"service {name} passes undeclared build args"
    assert built >= 2


def test_every_disc_variable_is_one_the_product_reads(compose):
    known = _known_env_vars()
    used = set()
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        for variable in environment:
            if variable.startswith("DISC_"):
                assert variable in known, f"service {name} sets {variable}, which nothing reads"
                used.add(variable)
    for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        for token in line.split():
            if token.startswith("DISC_") and "=" in token:
                assert token.split("=")[0] in known, f"Dockerfile sets {token}, which nothing reads"
    assert {"DISC_DATABASE_URL", "DISC_BROKER_URL", "DISC_ARTIFACT_URL"} <= used


def test_settings_accept_the_compose_environment(compose, monkeypatch):
    from store.settings import Settings

    for variable, value in compose["services"]["api"]["environment"].items():
        monkeypatch.setenv(variable, str(value))
    settings = Settings()
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.broker_url.startswith("redis://") and not settings.is_embedded_broker
    assert settings.environment == "production" and not settings.auth_disabled
