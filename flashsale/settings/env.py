"""Typed readers for environment variables, so every setting says its default once."""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_rate(name: str, default: str) -> str | None:
    """A django-ratelimit rate such as `5/m`; `0` or `off` disables the limit (None)."""
    raw = os.environ.get(name, default).strip().lower()
    if raw in {"0", "off", "none", "disabled"}:
        return None
    count, _, period = raw.partition("/")
    if not count.isdigit() or not period or period[-1] not in "smhd":
        raise ImproperlyConfigured(f"{name} must look like 5/m, 60/s, 100/h or be 'off', not {raw!r}")
    return raw
