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
