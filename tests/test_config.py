"""Settings: defaults, the caller's mapping, the environment, and refusing bad values."""

from __future__ import annotations

import json
import math

import pytest

from agent_registry.config import ConfigError, Settings, load_settings

DURATIONS = [
    "AGENT_REGISTRY_HEARTBEAT_INTERVAL_SECONDS",
    "AGENT_REGISTRY_STALE_AFTER_SECONDS",
    "AGENT_REGISTRY_DEAD_AFTER_SECONDS",
    "AGENT_REGISTRY_COMMAND_EXPIRY_SECONDS",
    "AGENT_REGISTRY_KEEPALIVE_SECONDS",
    "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS",
    "AGENT_REGISTRY_COMMAND_RETENTION_SECONDS",
]


def test_defaults_match_the_documented_table():
    settings = load_settings({}, {})

    assert settings.heartbeat_interval_seconds == 30
    assert settings.stale_after_seconds == 90
    assert settings.dead_after_seconds == 300
    assert settings.command_expiry_seconds == 60
    assert settings.keepalive_seconds == 15
    assert settings.sweep_interval_seconds == 1
    assert settings.command_retention_seconds == 3600
    assert settings.max_body_bytes == 65536
    assert settings.store == "memory"
    assert settings.uses_memory_store is True
    assert settings.trusted_proxies == 0
    assert settings.metrics is True
    assert settings == Settings()


def test_no_arguments_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("AGENT_REGISTRY_STALE_AFTER_SECONDS", "12")

    assert load_settings().stale_after_seconds == 12.0


def test_an_explicit_environ_is_used_instead_of_the_process_environment(monkeypatch):
    monkeypatch.setenv("AGENT_REGISTRY_STALE_AFTER_SECONDS", "not-a-number")

    assert load_settings({}, {}).stale_after_seconds == 90.0


def test_environment_variables_override_the_defaults():
    environ = {
        "AGENT_REGISTRY_HEARTBEAT_INTERVAL_SECONDS": "5",
        "AGENT_REGISTRY_STALE_AFTER_SECONDS": "15",
        "AGENT_REGISTRY_DEAD_AFTER_SECONDS": "45",
        "AGENT_REGISTRY_COMMAND_EXPIRY_SECONDS": "10",
        "AGENT_REGISTRY_KEEPALIVE_SECONDS": "2",
        "AGENT_REGISTRY_SWEEP_INTERVAL_SECONDS": "0.1",
        "AGENT_REGISTRY_COMMAND_RETENTION_SECONDS": "120",
        "AGENT_REGISTRY_MAX_BODY_BYTES": "2048",
        "AGENT_REGISTRY_STORE": "redis://cache.internal:6379/2",
        "AGENT_REGISTRY_TRUSTED_PROXIES": "1",
        "UNRELATED": "ignored",
    }

    settings = load_settings({}, environ)

    assert settings == Settings(
        heartbeat_interval_seconds=5.0,
        stale_after_seconds=15.0,
        dead_after_seconds=45.0,
        command_expiry_seconds=10.0,
        keepalive_seconds=2.0,
        sweep_interval_seconds=0.1,
        command_retention_seconds=120.0,
        max_body_bytes=2048,
        store="redis://cache.internal:6379/2",
        trusted_proxies=1,
    )
    assert settings.uses_memory_store is False


def test_the_callers_mapping_overrides_the_defaults():
    settings = load_settings(
        {"AGENT_REGISTRY_STALE_AFTER_SECONDS": 2, "AGENT_REGISTRY_MAX_BODY_BYTES": 4096}, {}
    )

    assert settings.stale_after_seconds == 2.0
    assert settings.max_body_bytes == 4096
    assert settings.dead_after_seconds == 300.0


def test_the_environment_wins_over_the_callers_mapping():
    settings = load_settings(
        {"AGENT_REGISTRY_STALE_AFTER_SECONDS": 2, "AGENT_REGISTRY_DEAD_AFTER_SECONDS": 7},
        {"AGENT_REGISTRY_STALE_AFTER_SECONDS": "3"},
    )

    assert settings.stale_after_seconds == 3.0
    assert settings.dead_after_seconds == 7.0


@pytest.mark.parametrize("name", DURATIONS)
def test_fractional_seconds_are_accepted(name):
    settings = load_settings({}, {name: "0.25"})

    field = name.removeprefix("AGENT_REGISTRY_").lower()
    assert getattr(settings, field) == 0.25


def test_fractional_seconds_from_the_callers_mapping_are_accepted():
    settings = load_settings({"AGENT_REGISTRY_COMMAND_EXPIRY_SECONDS": 1.5}, {})

    assert settings.command_expiry_seconds == 1.5


@pytest.mark.parametrize("name", DURATIONS)
@pytest.mark.parametrize("raw", ["abc", "", "30s", "0", "-1", "-0.5", "inf", "-inf", "nan"])
def test_an_invalid_duration_is_refused_naming_the_variable(name, raw):
    with pytest.raises(ConfigError) as raised:
        load_settings({}, {name: raw})

    assert name in str(raised.value)


@pytest.mark.parametrize("raw", [0, -3, math.inf, math.nan, None, "ten"])
def test_an_invalid_duration_in_the_callers_mapping_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError, match="AGENT_REGISTRY_DEAD_AFTER_SECONDS"):
        load_settings({"AGENT_REGISTRY_DEAD_AFTER_SECONDS": raw}, {})


def test_a_non_number_says_it_must_be_a_number():
    with pytest.raises(ConfigError) as raised:
        load_settings({}, {"AGENT_REGISTRY_KEEPALIVE_SECONDS": "soon"})

    message = str(raised.value)
    assert "AGENT_REGISTRY_KEEPALIVE_SECONDS" in message
    assert "'soon'" in message
    assert "must be a number" in message


def test_a_non_positive_duration_says_it_must_be_positive():
    with pytest.raises(ConfigError, match=r"AGENT_REGISTRY_STALE_AFTER_SECONDS.*positive"):
        load_settings({}, {"AGENT_REGISTRY_STALE_AFTER_SECONDS": "0"})


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("raw", ["1023", "0", "-1", "abc", "", "1.5e3x"])
def test_a_body_limit_below_1024_or_not_a_number_is_refused(raw):
    with pytest.raises(ConfigError, match="AGENT_REGISTRY_MAX_BODY_BYTES"):
        load_settings({}, {"AGENT_REGISTRY_MAX_BODY_BYTES": raw})


def test_a_body_limit_below_1024_says_the_minimum():
    with pytest.raises(ConfigError, match="at least 1024"):
        load_settings({}, {"AGENT_REGISTRY_MAX_BODY_BYTES": "1023"})


def test_a_body_limit_of_exactly_1024_is_accepted():
    assert load_settings({}, {"AGENT_REGISTRY_MAX_BODY_BYTES": "1024"}).max_body_bytes == 1024


def test_a_fractional_body_limit_in_the_callers_mapping_is_refused():
    with pytest.raises(ConfigError, match="AGENT_REGISTRY_MAX_BODY_BYTES"):
        load_settings({"AGENT_REGISTRY_MAX_BODY_BYTES": 2048.5}, {})


@pytest.mark.parametrize("raw", ["mysql://db/0", "redis", "memcached://x", ""])
def test_an_unknown_store_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError) as raised:
        load_settings({}, {"AGENT_REGISTRY_STORE": raw})

    assert "AGENT_REGISTRY_STORE" in str(raised.value)


@pytest.mark.parametrize("raw", ["memory", "redis://localhost:6379/0", "rediss://h:6380/1"])
def test_known_stores_are_accepted(raw):
    assert load_settings({}, {"AGENT_REGISTRY_STORE": raw}).store == raw


@pytest.mark.parametrize("raw", ["-1", "x"])
def test_an_invalid_trusted_proxies_count_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError, match="AGENT_REGISTRY_TRUSTED_PROXIES"):
        load_settings({}, {"AGENT_REGISTRY_TRUSTED_PROXIES": raw})


@pytest.mark.parametrize(("raw", "expected"), [("on", True), ("off", False), (" OFF ", False)])
def test_metrics_are_switched_on_or_off(raw, expected):
    assert load_settings({}, {"AGENT_REGISTRY_METRICS": raw}).metrics is expected


@pytest.mark.parametrize("raw", ["yes", "0", "", "true"])
def test_an_invalid_metrics_switch_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError, match=r"AGENT_REGISTRY_METRICS=.*must be 'on' or 'off'"):
        load_settings({}, {"AGENT_REGISTRY_METRICS": raw})


def test_public_config_renders_whole_seconds_as_integers():
    config = load_settings({}, {}).public_config()

    assert config == {
        "heartbeatIntervalSeconds": 30,
        "staleAfterSeconds": 90,
        "deadAfterSeconds": 300,
        "commandExpirySeconds": 60,
        "keepaliveSeconds": 15,
    }
    assert all(type(value) is int for value in config.values())
    assert json.dumps(config) == (
        '{"heartbeatIntervalSeconds": 30, "staleAfterSeconds": 90, "deadAfterSeconds": 300, '
        '"commandExpirySeconds": 60, "keepaliveSeconds": 15}'
    )


def test_public_config_keeps_fractional_seconds():
    settings = load_settings(
        {}, {"AGENT_REGISTRY_STALE_AFTER_SECONDS": "1.5", "AGENT_REGISTRY_KEEPALIVE_SECONDS": "2"}
    )

    config = settings.public_config()

    assert config["staleAfterSeconds"] == 1.5
    assert type(config["keepaliveSeconds"]) is int
    assert config["keepaliveSeconds"] == 2


def test_logs_default_to_text_without_an_access_log():
    settings = load_settings({}, {})

    assert settings.log_format == "text"
    assert settings.access_log is False


@pytest.mark.parametrize(
    ("raw", "expected"), [("json", "json"), ("JSON", "json"), ("text", "text")]
)
def test_a_known_log_format_is_accepted(raw, expected):
    environ = {"AGENT_REGISTRY_LOG_FORMAT": raw}

    assert load_settings({}, environ).log_format == expected


@pytest.mark.parametrize("raw", ["xml", "", "logfmt"])
def test_an_unknown_log_format_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError, match=r"AGENT_REGISTRY_LOG_FORMAT=.*must be 'text' or 'json'"):
        load_settings({}, {"AGENT_REGISTRY_LOG_FORMAT": raw})


@pytest.mark.parametrize(("raw", "expected"), [("on", True), ("OFF", False), (True, True)])
def test_the_access_log_is_on_or_off(raw, expected):
    assert load_settings({"AGENT_REGISTRY_ACCESS_LOG": raw}, {}).access_log is expected


@pytest.mark.parametrize("raw", ["yes", "1", "true", ""])
def test_an_access_log_other_than_on_or_off_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError, match=r"AGENT_REGISTRY_ACCESS_LOG=.*must be 'on' or 'off'"):
        load_settings({}, {"AGENT_REGISTRY_ACCESS_LOG": raw})
