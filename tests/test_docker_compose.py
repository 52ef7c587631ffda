"""docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine: services,
images, ports, mounts that point at files that exist, and environment names the settings know."""

from __future__ import annotations

import inspect
import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from centralino.asterisk import agi_server
from centralino.asterisk.audiosocket_server import AudioSocketServer
from centralino.asterisk.dialplan import load_dialplan, parse_config
from centralino.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service = compose["services"][name]
    assert isinstance(service, dict)
    return service


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of each volume, short ("src:dst:ro") or long syntax."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mode = "ro" if volume.get("read_only") else "rw"
            out.append((volume["source"], volume["target"], mode))
            continue
        source, target, *modes = volume.split(":")
        out.append((source, target, modes[0] if modes else "rw"))
    return out


# Sources built by `make prompts` (gitignored): they need not exist in a checkout.
GENERATED = "./build/"


def test_services_and_images(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"asterisk", "postgres", "redis", "centralino"}
    assert _service(compose, "asterisk")["image"] == "andrius/asterisk:22.10.1_debian-trixie"
    assert _service(compose, "postgres")["image"] == "postgres:17-alpine"
    assert _service(compose, "redis")["image"] == "redis:7.4-alpine"
    build = _service(compose, "centralino")["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    assert _service(compose, "centralino")["command"] == ["centralino", "serve"]


def test_bind_mounts_point_at_files_that_exist(compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for source, target, mode in _mounts(service):
            assert target.startswith("/"), (name, target)
            if source.startswith(GENERATED):
                continue  # test_product_prompts_are_mounted_where_asterisk_looks
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)
                assert mode == "ro", (name, source)  # configuration is read-only in containers
            else:
                assert source in named, (name, source)
    asterisk = {t: s for s, t, _ in _mounts(_service(compose, "asterisk"))}
    assert asterisk["/etc/asterisk"] == "./asterisk_conf"
    assert asterisk["/var/lib/asterisk/agi-bin/fallback_queue.py"] == (
        "./agi_scripts/fallback_queue.py"
    )
    # the entrypoint script lives in the mounted configuration folder
    entrypoint = _service(compose, "asterisk")["entrypoint"]
    assert entrypoint[0] == "/bin/sh"
    script = Path(entrypoint[1])
    assert script.parent == Path("/etc/asterisk")
    assert (ROOT / "asterisk_conf" / script.name).is_file()
    # ... and it hands over to the image's own entrypoint and asterisk in the foreground
    command = _service(compose, "asterisk")["command"]
    assert command[:2] == ["/usr/local/bin/entrypoint.sh", "/usr/sbin/asterisk"]
    assert "-f" in command


def test_product_prompts_are_mounted_where_asterisk_looks(compose: dict[str, Any]) -> None:
    # Asterisk plays sound NAME in the channel's language from <sounds>/<lang>/NAME.<format>;
    # centralino.prompts writes <out>/<lang>/NAME.wav and `make prompts` sets out=build/sounds.
    from centralino import prompts

    assert "-m centralino.prompts --out build/sounds" in (ROOT / "Makefile").read_text()
    volumes = [v for v in _service(compose, "asterisk")["volumes"] if isinstance(v, dict)]
    by_target = {v["target"]: v for v in volumes}
    for language in prompts.LANGUAGES:
        folder = prompts.output_path(Path("build/sounds"), language, prompts.PROMPTS[0]).parent
        mount = by_target[f"/var/lib/asterisk/sounds/{language}/centralino"]
        assert mount["type"] == "bind"
        assert mount["source"] == f"./{folder.as_posix()}"
        assert mount["read_only"] is True
        # missing prompts stop `docker compose up` instead of leaving Asterisk silent
        assert mount["bind"]["create_host_path"] is False
    # every generated mount is one of these, and generated audio is never committed
    generated = [s for s, _, _ in _mounts(_service(compose, "asterisk")) if s.startswith(GENERATED)]
    assert len(generated) == len(prompts.LANGUAGES)
    assert "build/" in (ROOT / ".gitignore").read_text().split()


def _duration_s(value: str) -> float:
    """A Compose duration ("1m30s", "20s", "500ms") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, value
    return sum(float(n) * units[u] for n, u in parts)


def test_stop_grace_period_outlasts_the_app_shutdown(compose: dict[str, Any]) -> None:
    assert _duration_s("1m30s") == 90.0 and _duration_s("500ms") == 0.5
    env = _service(compose, "centralino")["environment"]
    sample = {k: INTERPOLATION.sub("sample", v) for k, v in env.items() if k != "CENTRALINO_CONFIG"}
    settings = load_settings(ROOT / "centralino.example.toml", environ=sample)
    grace = _duration_s(_service(compose, "centralino")["stop_grace_period"])
    # The app's own shutdown, at worst: FastAGI calls get server.grace_s, those still up are
    # handed back and cancelled (waiting _CANCEL_WAIT_S), AudioSocket streams get their stop
    # grace. Docker's SIGKILL must come at least 10 s after that (web, AMI and pools close).
    audiosocket = inspect.signature(AudioSocketServer.stop).parameters["grace_s"].default
    app_shutdown_s = settings.server.grace_s + agi_server._CANCEL_WAIT_S + audiosocket
    assert grace >= app_shutdown_s + 10.0, (grace, app_shutdown_s)


def test_ports_match_asterisk_and_app_configuration(compose: dict[str, Any]) -> None:
    asterisk_ports = _service(compose, "asterisk")["ports"]
    assert "5060:5060/udp" in asterisk_ports
    rtp = parse_config(ROOT / "asterisk_conf" / "rtp.conf")
    start, end = rtp.value("general", "rtpstart"), rtp.value("general", "rtpend")
    assert f"{start}-{end}:{start}-{end}/udp" in asterisk_ports
    pjsip = parse_config(ROOT / "asterisk_conf" / "pjsip.conf")
    assert pjsip.value("transport-udp", "bind") == "0.0.0.0:5060"
    centralino = _service(compose, "centralino")
    assert centralino["ports"] == ["8080:8080"]  # FastAGI/AudioSocket are not published
    settings = load_settings(ROOT / "centralino.example.toml", environ={})
    assert set(centralino["expose"]) == {
        str(settings.server.agi_port),
        str(settings.server.audiosocket_port),
    }
    dialplan = load_dialplan(ROOT / "asterisk_conf" / "extensions.conf")
    assert dialplan.globals["CENTRALINO_HOST"] == "centralino"  # the service name
    assert dialplan.globals["CENTRALINO_AGI_PORT"] == str(settings.server.agi_port)
    # nothing publishes AMI
    for service in compose["services"].values():
        assert not any("5038" in str(p) for p in service.get("ports", []))


def test_centralino_environment_names_match_the_settings(compose: dict[str, Any]) -> None:
    env = _service(compose, "centralino")["environment"]
    assert env["CENTRALINO_CONFIG"] == "/etc/centralino/centralino.toml"
    mounts = {t: s for s, t, _ in _mounts(_service(compose, "centralino"))}
    assert (ROOT / mounts[env["CENTRALINO_CONFIG"]]).is_file()
    assert {
        "CENTRALINO_DATABASE_URL",
        "CENTRALINO_REDIS_URL",
        "CENTRALINO_AMI_HOST",
        "CENTRALINO_AMI_SECRET",
    } <= set(env)
    for name in env:
        if name == "CENTRALINO_CONFIG":
            continue
        assert name.startswith(ENV_PREFIX), name
        section, _, key = name.removeprefix(ENV_PREFIX).lower().partition("_")
        assert section in Settings.model_fields, name
        model = Settings.model_fields[section].annotation
        assert model is not None
        assert key in model.model_fields, name
    assert env["CENTRALINO_AMI_HOST"] == "asterisk"
    assert env["CENTRALINO_DATABASE_URL"].split("@")[1].startswith("postgres:5432/")
    assert env["CENTRALINO_REDIS_URL"].startswith("redis://redis:6379/")
    assert env["CENTRALINO_SERVER_HOST"] == "0.0.0.0"
    # the values validate: interpolations replaced by sample secrets
    sample = {k: INTERPOLATION.sub("sample", v) for k, v in env.items() if k != "CENTRALINO_CONFIG"}
    settings = load_settings(ROOT / "centralino.example.toml", environ=sample)
    assert settings.ami.host == "asterisk"
    assert settings.ami.username == "centralino"  # the user manager.conf defines


def test_secrets_come_only_from_the_environment(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("SECRET", "PASSWORD")) or "@" in str(value):
                assert INTERPOLATION.search(str(value)), (name, key)
    ami = INTERPOLATION.search(
        _service(compose, "centralino")["environment"]["CENTRALINO_AMI_SECRET"]
    )
    assert ami is not None
    assert ami.group(1) == "CENTRALINO_AMI_SECRET"
    asterisk_env = _service(compose, "asterisk")["environment"]
    assert INTERPOLATION.search(asterisk_env["CENTRALINO_AMI_SECRET"]).group(1) == (  # type: ignore[union-attr]
        "CENTRALINO_AMI_SECRET"
    )
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".dockerignore").read_text()


def test_network_is_the_one_manager_conf_permits(compose: dict[str, Any]) -> None:
    (subnet,) = [c["subnet"] for c in compose["networks"]["centralino"]["ipam"]["config"]]
    network = ipaddress.ip_network(subnet)
    manager = parse_config(ROOT / "asterisk_conf" / "manager.conf")
    permits = manager.values("centralino-perms", "permit")
    assert f"{network.network_address}/{network.netmask}" in permits
    address = _service(compose, "centralino")["networks"]["centralino"]["ipv4_address"]
    assert ipaddress.ip_address(address) in network


def test_healthchecks_and_start_order(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    check = " ".join(_service(compose, "centralino")["healthcheck"]["test"])
    assert "http://127.0.0.1:8080/healthz" in check
    depends = _service(compose, "centralino")["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"


def test_dockerfile_is_slim_non_root_and_copies_files_that_exist() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ")]
    assert copies
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") not in ignored, source
    assert any(line.startswith("RUN pip install .") for line in lines)
    (user,) = [line for line in lines if line.startswith("USER ")]
    assert user.split()[1] not in ("root", "0")
    (expose,) = [line for line in lines if line.startswith("EXPOSE ")]
    assert set(expose.split()[1:]) == {"4573", "9092", "8080"}
    assert lines[-1] == 'CMD ["centralino", "serve"]'
    assert {".venv", ".git", ".env", "tests"} <= ignored
