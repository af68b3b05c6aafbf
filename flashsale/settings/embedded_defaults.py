"""Fill DATABASES / CACHES from the embedded servers when the env names none.

Imported by the local and test settings only: production must be told its servers.
"""

from pathlib import Path

from flashsale import embedded


def embedded_urls(database_url: str, redis_url: str) -> tuple[str, str]:
    if database_url and redis_url:
        return database_url, redis_url
    embedded.ensure_running(postgres=not database_url, redis=not redis_url)
    found = embedded.urls()
    return database_url or found.database_url, redis_url or found.redis_url


def local_secret_key(base_dir: Path) -> str:
    """A random key kept under .data/, so local sessions survive restarts without a key in git."""
    from django.core.management.utils import get_random_secret_key

    path = embedded.DATA_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()
