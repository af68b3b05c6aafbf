"""Settings behaviour that operators rely on: env parsing and production's refusals."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from flashsale.settings.env import env_rate

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize(("raw", "expected"), [("5/m", "5/m"), ("0", None), ("off", None), ("OFF", None), ("60/S", "60/s")])
def test_rates_parse_and_zero_or_off_disable(monkeypatch, raw, expected):
    monkeypatch.setenv("RATE_X", raw)
    assert env_rate("RATE_X", "1/m") == expected


@pytest.mark.parametrize("raw", ["five", "5", "5/x", "/m"])
def test_bad_rates_are_refused(monkeypatch, raw):
    monkeypatch.setenv("RATE_X", raw)
    with pytest.raises(ImproperlyConfigured):
        env_rate("RATE_X", "1/m")


def _production(**env):
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env={**clean, "DJANGO_SETTINGS_MODULE": "flashsale.settings.production", **env},
        capture_output=True, text=True,
    )


def test_production_refuses_to_start_without_secret_key():
    result = _production(DATABASE_URL="postgres://x@127.0.0.1/x", REDIS_URL="redis://127.0.0.1:6379/0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_servers():
    result = _production(SECRET_KEY="x" * 60)
    assert result.returncode != 0
    assert "DATABASE_URL and REDIS_URL" in result.stderr


def test_debug_is_off_by_default(settings):
    from flashsale.settings import base

    assert os.environ.get("DEBUG") is not None or base.DEBUG is False


@pytest.mark.parametrize("module", ["flashsale.settings.local", "flashsale.settings.test"])
def test_importing_checkout_settings_starts_and_writes_nothing(tmp_path, module):
    data_dir = tmp_path / "data"
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}}
    result = subprocess.run(
        [sys.executable, "-c", f"import {module} as s; print(s.DATABASES['default']['HOST'])"],
        cwd=ROOT, env={**clean, "FLASHSALE_DATA_DIR": str(data_dir)}, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert not data_dir.exists()  # no server, no socket dir, no secret key file
    assert result.stdout.strip() == str(data_dir / "postgres")  # it names where the embedded server listens


def test_provide_names_the_embedded_servers_only_for_checkout_settings():
    from flashsale import embedded

    production = {"DJANGO_SETTINGS_MODULE": "flashsale.settings.production"}
    assert embedded.provide(production) == [] and set(production) == {"DJANGO_SETTINGS_MODULE"}
    named = {"DJANGO_SETTINGS_MODULE": "flashsale.settings.local", "DATABASE_URL": "postgres://x@h/db",
             "REDIS_URL": "redis://h:6379/0", "SECRET_KEY": "k"}
    assert embedded.provide(dict(named)) == [] and embedded.provide(named) == []
    assert named["DATABASE_URL"] == "postgres://x@h/db"  # what the env names wins
