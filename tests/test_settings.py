"""Settings: the example file is valid, env overrides win, errors name the key, secrets hide."""

from __future__ import annotations

from pathlib import Path

import pytest

from centralino.cli import main
from centralino.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_example_file_is_valid_and_matches_defaults() -> None:
    settings = load_settings(ROOT / "centralino.example.toml", environ={})
    assert settings.server.agi_port == 4573
    assert settings.server.audiosocket_port == 9092
    assert settings.server.http_port == 8080
    assert settings.context.deadline_ms == 400
    assert settings.database.url is None


def test_environment_overrides_the_file() -> None:
    env = {
        "CENTRALINO_SERVER_HTTP_PORT": "8181",
        "CENTRALINO_DATABASE_URL": "postgresql://u:pw@db/centralino",
        "CENTRALINO_AMI_SECRET": "s3cret",
        "CENTRALINO_LOGGING_JSON": "true",
    }
    settings = load_settings(ROOT / "centralino.example.toml", environ=env)
    assert settings.server.http_port == 8181
    assert settings.logging.json_lines is True
    assert settings.database.url is not None
    assert settings.database.url.get_secret_value() == "postgresql://u:pw@db/centralino"
    shown = repr(settings.redacted())
    assert "s3cret" not in shown and "pw@" not in shown


def test_error_names_the_key_and_expected_form(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nhttp_port = "eighty"\n[context]\ndeadline_ms = -1\n')
    with pytest.raises(SettingsError) as info:
        load_settings(path, environ={})
    text = str(info.value)
    assert "server.http_port" in text and "integer" in text
    assert "context.deadline_ms" in text and "greater than 0" in text


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("[server]\nhttp_prot = 1\n")
    with pytest.raises(SettingsError, match=r"server\.http_prot"):
        load_settings(path, environ={})


def test_secret_in_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    path.write_text('[ami]\nsecret = "oops"\n')
    with pytest.raises(SettingsError, match="CENTRALINO_AMI_SECRET"):
        load_settings(path, environ={})
    path.write_text('[database]\nurl = "postgresql://u:pw@db/x"\n')
    with pytest.raises(SettingsError, match="CENTRALINO_DATABASE_URL"):
        load_settings(path, environ={})


def test_bad_toml_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(broken, environ={})


def test_serve_refuses_to_start_without_storage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CENTRALINO_DATABASE_URL", "CENTRALINO_REDIS_URL", "CENTRALINO_AMI_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CENTRALINO_CONFIG", raising=False)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "CENTRALINO_DATABASE_URL" in err and "CENTRALINO_REDIS_URL" in err
    assert "CENTRALINO_AMI_SECRET" in err


def test_check_config_prints_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CENTRALINO_AMI_SECRET", "hunter2")
    assert main(["--config", str(ROOT / "centralino.example.toml"), "check-config"]) == 0
    out = capsys.readouterr().out
    assert '"agi_port": 4573' in out and "hunter2" not in out


def test_a_busy_port_is_reported_clearly_not_as_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    from centralino.cli import _run

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        async def start_server() -> int:  # what a server's start does with a taken port
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))
            return 0

        assert _run(start_server()) == 2
    err = capsys.readouterr().err
    assert "another process listens on a configured port" in err
    assert "CENTRALINO_SERVER_AGI_PORT" in err


def test_example_knows_every_numeric_transfer_alias_of_the_dialplan() -> None:
    """A DTMF blind transfer reports the number dialled (7001@centralino-transfer): the app
    must know it as the queue the dialplan's alias leads to, or it logs a transfer to
    nowhere while the caller waits in that queue."""
    import re

    settings = load_settings(ROOT / "centralino.example.toml", environ={})
    conf = (ROOT / "asterisk_conf" / "extensions.conf").read_text(encoding="utf-8")
    section = conf.split("\n[centralino-transfer]\n", 1)[1].split("\n[", 1)[0]
    aliases = dict(re.findall(r"^exten => (\d+),1,Goto\(([a-z][a-z0-9_-]*),1\)", section, re.M))
    assert aliases, "the dialplan has numeric transfer aliases"
    known = settings.acd.transfer_queues()
    assert {f"{n}@centralino-transfer": q for n, q in aliases.items()}.items() <= known.items()


def test_example_intents_are_the_built_in_routes() -> None:
    from contact.rules import DEFAULT_ROUTES

    settings = load_settings(ROOT / "centralino.example.toml", environ={})
    assert settings.contact.routes() == dict(DEFAULT_ROUTES)


@pytest.mark.parametrize("name", ["h", "s", "fax", "talk"])
def test_a_queue_named_like_an_asterisk_special_extension_is_refused(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / "q.toml"
    path.write_text(f'[[acd.queues]]\nname = "{name}"\nskill = "support"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"acd\.queues"):
        load_settings(path, environ={})


def test_given_pool_min_above_pool_max_then_the_error_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text("[database]\npool_min = 10\npool_max = 5\n", encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_settings(path, environ={})
    text = str(info.value)
    assert "database.pool_min" in text and "at most database.pool_max (5)" in text


def test_given_an_environment_override_that_crosses_the_pool_bounds_then_refused() -> None:
    with pytest.raises(SettingsError, match=r"database\.pool_min"):
        load_settings(environ={"CENTRALINO_DATABASE_POOL_MAX": "1"})  # pool_min defaults to 2


_BACKENDS = """
[[context.backends]]
name = "erp"
base_url = "http://erp.example"
[[context.backends.requests]]
url_template = "/customers?phone={phone}"
[[context.backends.requests.extracts]]
kind = "customer"

[[context.backends]]
name = "crm"
base_url = "http://crm.example"
auth_env = "CRM_TOKEN"
[[context.backends.requests]]
url_template = "/contacts?phone={phone}"
[[context.backends.requests.extracts]]
kind = "contact"
"""


def test_given_a_backend_auth_env_that_is_unset_then_the_error_names_the_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "backends.toml"
    path.write_text(_BACKENDS, encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_settings(path, environ={"ERP_TOKEN": "unrelated"})
    text = str(info.value)
    assert "context.backends[1].auth_env" in text and "CRM_TOKEN is not set" in text
    assert "context.backends[0]" not in text

    settings = load_settings(path, environ={"CRM_TOKEN": "Bearer t"})  # the same mapping
    assert settings.context.backends[1].auth_env == "CRM_TOKEN"


def test_check_config_fails_naming_an_unset_auth_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "backends.toml"
    path.write_text(_BACKENDS, encoding="utf-8")
    monkeypatch.delenv("CRM_TOKEN", raising=False)
    assert main(["--config", str(path), "check-config"]) == 2
    assert "context.backends[1].auth_env" in capsys.readouterr().err
    monkeypatch.setenv("CRM_TOKEN", "Bearer t")
    assert main(["--config", str(path), "check-config"]) == 0


def test_the_record_spool_directory_defaults_to_the_working_directory(tmp_path: Path) -> None:
    example = load_settings(ROOT / "centralino.example.toml", environ={})
    assert example.database.spool_dir == Path(".centralino-spool")
    path = tmp_path / "spool.toml"
    path.write_text('[database]\nspool_dir = "/var/spool/centralino"\n')
    assert load_settings(path, environ={}).database.spool_dir == Path("/var/spool/centralino")


def test_webhook_secrets_come_from_the_environment_only(tmp_path: Path) -> None:
    env = {
        "CENTRALINO_WHATSAPP_APP_SECRET": "wa-s3cret",
        "CENTRALINO_WHATSAPP_VERIFY_TOKEN": "wa-t0ken",
        "CENTRALINO_TWILIO_AUTH_TOKEN": "tw-t0ken",
        "CENTRALINO_SERVER_PUBLIC_URL": "https://centralino.example.com/",
    }
    settings = load_settings(environ=env)
    assert settings.whatsapp.app_secret is not None
    assert settings.whatsapp.app_secret.get_secret_value() == "wa-s3cret"
    assert settings.twilio.auth_token is not None
    assert settings.server.public_url == "https://centralino.example.com"
    shown = repr(settings.redacted())
    assert not any(s in shown for s in ("wa-s3cret", "wa-t0ken", "tw-t0ken"))
    for section, key, var in [
        ("whatsapp", "app_secret", "CENTRALINO_WHATSAPP_APP_SECRET"),
        ("whatsapp", "verify_token", "CENTRALINO_WHATSAPP_VERIFY_TOKEN"),
        ("twilio", "auth_token", "CENTRALINO_TWILIO_AUTH_TOKEN"),
    ]:
        path = tmp_path / f"{key}.toml"
        path.write_text(f'[{section}]\n{key} = "oops"\n')
        with pytest.raises(SettingsError, match=var):
            load_settings(path, environ={})


def test_public_url_must_be_an_http_url() -> None:
    with pytest.raises(SettingsError, match=r"server\.public_url"):
        load_settings(environ={"CENTRALINO_SERVER_PUBLIC_URL": "centralino.example.com"})


def test_the_whatsapp_access_token_is_environment_only(tmp_path: Path) -> None:
    path = tmp_path / "token.toml"
    path.write_text('[whatsapp]\naccess_token = "oops"\n')
    with pytest.raises(SettingsError, match="CENTRALINO_WHATSAPP_ACCESS_TOKEN"):
        load_settings(path, environ={})
    settings = load_settings(environ={"CENTRALINO_WHATSAPP_ACCESS_TOKEN": "EAAG-t0ken"})
    assert settings.whatsapp.access_token is not None
    assert "EAAG-t0ken" not in repr(settings.redacted())


def test_access_settings_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[access]\npublic_urls = ["https://cc.example.com"]\nsession_idle_s = 600\n')
    settings = load_settings(path, environ={})
    assert settings.access.public_urls == ["https://cc.example.com"]
    assert settings.access.session_idle_s == 600 and settings.access.cookie_secure is None
    env = {
        "CENTRALINO_ACCESS_PUBLIC_URLS": "https://a.example, http://10.0.0.5:8080",
        "CENTRALINO_ACCESS_COOKIE_SECURE": "true",
    }
    settings = load_settings(path, environ=env)
    assert settings.access.public_urls == ["https://a.example", "http://10.0.0.5:8080"]
    assert settings.access.cookie_secure is True


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://cc.example.com", "expected an http:// or https:// URL"),
        ("https://cc.example.com/centralino", "expected an origin only"),
        ("cc.example.com", "expected an http:// or https:// URL"),
    ],
)
def test_bad_public_urls_name_the_key(value: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(None, environ={"CENTRALINO_ACCESS_PUBLIC_URLS": value})
    assert "access.public_urls" in str(error.value) and message in str(error.value)


def test_the_demo_password_comes_from_the_environment_only(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[demo]\npassword = "in the file"\n')
    with pytest.raises(SettingsError, match="CENTRALINO_DEMO_PASSWORD"):
        load_settings(path, environ={})
    settings = load_settings(None, environ={"CENTRALINO_DEMO_PASSWORD": "from the env ok"})
    assert settings.demo.password is not None
    assert "from the env ok" not in str(settings.redacted())
