"""`manage.py create_shoppers`: the load tools' accounts, with tokens, in bulk."""

from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token


def test_create_shoppers_writes_usable_tokens(db, tmp_path, client_for):
    tokens = tmp_path / "tokens.csv"
    call_command("create_shoppers", "25", "--prefix", "load", "--password", "pw-123456", "--tokens", str(tokens))
    lines = tokens.read_text().splitlines()
    assert len(lines) == 25
    username, key = lines[0].split(",")
    assert username == "load-00001"
    assert Token.objects.get(key=key).user.username == "load-00001"
    user = get_user_model().objects.get(username="load-00025")
    assert user.password.startswith("loadtest_md5$")
    assert user.check_password("pw-123456") and not user.is_staff
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/orders/").status_code == 200


def test_create_shoppers_again_keeps_accounts_and_tokens(db, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    call_command("create_shoppers", "10", "--prefix", "again", "--tokens", str(first))
    call_command("create_shoppers", "12", "--prefix", "again", "--tokens", str(second))
    assert get_user_model().objects.filter(username__startswith="again-").count() == 12
    assert second.read_text().splitlines()[:10] == first.read_text().splitlines()


def test_create_shoppers_handles_ten_thousand(db, tmp_path):
    call_command("create_shoppers", "10000", "--prefix", "many", "--tokens", str(tmp_path / "t.csv"))
    assert Token.objects.filter(user__username__startswith="many-").count() == 10000


def test_bulk_tokens_are_cached_like_a_logins_and_still_dropped_on_deactivation(db, client_for):
    """create_shoppers hands tokens out as POST /api/auth/token/ does, so their first request
    reads the shopper from Redis (no token query); deactivating one still locks it out."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from shoppers.services import create_shoppers

    (_, key), (name, other) = create_shoppers(count=2, prefix="cached")
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/products/stock/?ids=1").status_code in (200, 400)
        assert client.get("/api/orders/").status_code == 200
    assert not [q for q in queries.captured_queries if "authtoken_token" in q["sql"]]

    user = get_user_model().objects.get(username=name)
    user.is_active = False
    user.save()
    client.credentials(HTTP_AUTHORIZATION=f"Token {other}")
    assert client.get("/api/orders/").status_code == 401
