from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigError, describe, load_config


def test_defaults_match_the_public_contract() -> None:
    config = load_config(environ={})
    assert config.data_dir == Path("./data")
    assert config.http_listen == "127.0.0.1:8080"
    assert config.inbound_listen == "0.0.0.0:25"
    assert config.submission_listen == "0.0.0.0:587"
    assert config.smtp_port == 25
    assert config.smtp_max_retries == 5
    assert config.smtp_retry_base_delay == 60
    assert config.dns_nameservers == ()
    assert config.effective_database_url.startswith("sqlite:///")
    assert config.effective_database_url.endswith("/data/postyard.db")
    assert config.admin_url == "http://127.0.0.1:8080/admin/"


def test_environment_variables_of_the_spec_override_defaults() -> None:
    env = {
        "POSTYARD_DATA_DIR": "/srv/postyard",
        "POSTYARD_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/postyard",
        "POSTYARD_HTTP_LISTEN": "0.0.0.0:9000",
        "POSTYARD_INBOUND_LISTEN": "0.0.0.0:2525",
        "POSTYARD_SUBMISSION_LISTEN": "127.0.0.1:2587",
        "POSTYARD_DNS_NAMESERVERS": "127.0.0.1:5353, 127.0.0.2:53",
        "POSTYARD_SMTP_PORT": "2526",
        "SMTP_MAX_RETRIES": "3",
        "SMTP_RETRY_BASE_DELAY": "1.5",
    }
    config = load_config(environ=env)
    assert config.data_dir == Path("/srv/postyard")
    assert config.effective_database_url == env["POSTYARD_DATABASE_URL"]
    assert config.http.port == 9000
    assert config.admin_url == "http://127.0.0.1:9000/admin/"
    assert config.inbound.port == 2525
    assert config.submission.host == "127.0.0.1"
    assert config.dns_nameservers == ("127.0.0.1:5353", "127.0.0.2:53")
    assert config.smtp_port == 2526
    assert config.smtp_max_retries == 3
    assert config.smtp_retry_base_delay == 1.5


def test_toml_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "postyard.toml"
    path.write_text('http_listen = "127.0.0.1:7000"\nsmtp_max_retries = 2\nlog_level = "debug"\n')
    config = load_config(path, environ={"POSTYARD_HTTP_LISTEN": "127.0.0.1:7001"})
    assert config.http.port == 7001
    assert config.smtp_max_retries == 2
    assert config.log_level == "debug"


def test_unknown_key_in_file_is_named_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "postyard.toml"
    path.write_text('http_lsten = "127.0.0.1:7000"\n')
    with pytest.raises(ConfigError, match=r"http_lsten \(did you mean http_listen\?\)"):
        load_config(path, environ={})


def test_unknown_postyard_environment_variable_is_an_error() -> None:
    with pytest.raises(ConfigError, match="POSTYARD_DATADIR"):
        load_config(environ={"POSTYARD_DATADIR": "/x"})


def test_other_environment_variables_are_ignored() -> None:
    load_config(environ={"PATH": "/usr/bin", "SMTP_SOMETHING_ELSE": "1"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POSTYARD_HTTP_LISTEN": "8080"}, "expected host:port"),
        ({"POSTYARD_SMTP_PORT": "twenty-five"}, "smtp_port: expected int"),
        ({"SMTP_RETRY_BASE_DELAY": "0"}, "positive number of seconds"),
        ({"POSTYARD_LOG_LEVEL": "loud"}, "log_level"),
        ({"POSTYARD_DATABASE_URL": "mysql://x"}, "only sqlite"),
    ],
)
def test_bad_values_say_what_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(environ=env)


def test_invalid_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("http_listen = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={})


def test_every_key_is_documented() -> None:
    rows = describe()
    assert rows, "schema has keys"
    for row in rows:
        assert row["doc"], f"{row['key']} has no description"
        assert row["env"].startswith("POSTYARD_")
    assert any(r["key"] == "smtp_max_retries" and "SMTP_MAX_RETRIES" in r["env"] for r in rows)
