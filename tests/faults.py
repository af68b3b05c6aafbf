"""Small helpers shared by the fault tests: tokens, API calls that never raise, DB peeks."""

import contextlib

import httpx
from django.db import connection
from rest_framework.authtoken.models import Token


def token_for(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def buy(base: str, token: str, product_id: int, *, quantity: int = 1, key: str | None = None,
        headers: dict | None = None, source: str | None = None, timeout: float = 60) -> tuple[int, str | None, str]:
    """POST a purchase to a running server: (status, error code or None, content type).

    A dropped connection is status 0. `source` sends from that loopback address (127.0.0.x),
    to look like another client to per-address limits.
    """
    headers = {"Authorization": f"Token {token}", **(headers or {})}
    if key:
        headers["Idempotency-Key"] = key
    transport = httpx.HTTPTransport(local_address=source) if source else None
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.post(f"{base}/api/orders/", json={"product_id": product_id, "quantity": quantity},
                                   headers=headers)
    except httpx.TransportError:
        return 0, None, ""
    content_type = response.headers.get("content-type", "")
    code = response.json().get("code") if content_type.startswith("application/json") else None
    return response.status_code, code, content_type


def backends(where: str) -> list[tuple]:
    """(pid, application_name, wait_event) of this database's sessions matching `where`."""
    with connection.cursor() as cursor:
        # Inside a transaction pg_stat_activity is a snapshot taken at its first read; a test
        # that polls while holding a lock would otherwise see that first snapshot for ever.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid, application_name, wait_event FROM pg_stat_activity "
            f"WHERE datname = current_database() AND pid <> pg_backend_pid() AND {where}"
        )
        return cursor.fetchall()


@contextlib.contextmanager
def orders_insert_fails(*, quantity: int, sqlstate: str):
    """While inside: inserting an order of `quantity` units fails with `sqlstate` (a test-only trigger)."""
    with connection.cursor() as cursor:
        cursor.execute(f"""
            CREATE OR REPLACE FUNCTION fault_fail_marked_order() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.quantity = {int(quantity)} THEN
                    RAISE EXCEPTION 'fault injected by a test' USING ERRCODE = '{sqlstate}';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER fault_fail_marked_order BEFORE INSERT ON orders_order
                FOR EACH ROW EXECUTE FUNCTION fault_fail_marked_order();
        """)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS fault_fail_marked_order ON orders_order")
            cursor.execute("DROP FUNCTION IF EXISTS fault_fail_marked_order()")
