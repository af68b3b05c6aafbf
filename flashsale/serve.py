"""`make run`: migrate, load the demo data, print where to go, then become gunicorn.

Run under `python -m flashsale.embedded hold --`, which provides the servers and stops
them (if it started them) once gunicorn exits on Ctrl-C or SIGTERM.
"""

import os
import shutil
import sys

import django
from django.core.management import call_command


def _migrate_and_seed() -> None:
    """Several `make run` may start at once on a fresh database: one migrates and seeds at a time."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtextextended('flashsale-serve-setup', 0))")
    try:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_demo")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended('flashsale-serve-setup', 0))")
        connection.close()


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flashsale.settings.local")
    django.setup()
    port = os.environ.setdefault("PORT", "8000")
    _migrate_and_seed()
    base = f"http://127.0.0.1:{port}"
    print(
        f"\nFlash sale is starting on {base}\n"
        f"  shop        {base}/\n"
        f"  admin       {base}/admin/\n"
        f"  dashboard   {base}/dashboard/\n"
        f"  API docs    {base}/api/docs/\n"
        f"  health      {base}/api/health/\n"
        "Ctrl-C stops the server (and the embedded databases, if this run started them).\n",
        flush=True,
    )
    argv = gunicorn_argv()
    os.execv(argv[0], argv)


def gunicorn_argv() -> list[str]:
    """gunicorn serving this checkout with its gunicorn.conf.py: the one way every launcher starts it."""
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or "gunicorn"
    return [gunicorn, "--config", "gunicorn.conf.py", "flashsale.wsgi:application"]


if __name__ == "__main__":
    main()
