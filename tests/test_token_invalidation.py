"""A deleted token is refused by every gunicorn worker at once, though each keeps its own copy.

The delete happens in another process (a `manage.py shell` with the server's settings), as
it would from the admin or a staff tool, and each answer after it comes on a new connection,
so it lands on whichever worker the kernel picks.
"""

import os
import subprocess
import sys

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.servers import ROOT, SERVER_SECRET_KEY, database_url, redis_url, running_app

pytestmark = pytest.mark.django_db(transaction=True)


def _status(base: str, key: str) -> int:
    with httpx.Client(base_url=base, headers={"Authorization": f"Token {key}", "Connection": "close"}) as client:
        return client.get("/api/orders/").status_code


def test_a_token_deleted_elsewhere_is_refused_by_every_worker(make_user):
    key = Token.objects.create(user=make_user()).key
    with running_app(workers=3) as base:
        assert {_status(base, key) for _ in range(15)} == {200}  # every worker has read it and keeps it
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c",
             f"from rest_framework.authtoken.models import Token; Token.objects.filter(key={key!r}).delete()"],
            cwd=ROOT, check=True, timeout=120,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "flashsale.settings.local", "DATABASE_URL": database_url(),
                 "REDIS_URL": redis_url(), "SECRET_KEY": SERVER_SECRET_KEY},
        )
        assert {_status(base, key) for _ in range(15)} == {401}
