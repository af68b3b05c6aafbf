"""Token authentication from the shared cache: no query per request, and never a stale yes."""

import json
import time

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from flashsale import local_tokens
from flashsale.authentication import GONE, CachedTokenAuthentication, forget_tokens, remember_token, token_cache_key
from tests.servers import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(shopper):
    return Token.objects.create(user=shopper)


def authenticate(key):
    return CachedTokenAuthentication().authenticate_credentials(key)


def test_a_known_token_costs_no_query_after_the_first(token, shopper):
    assert authenticate(token.key)[0].pk == shopper.pk  # reads the database, fills the cache
    with CaptureQueriesContext(connection) as queries:
        user, auth = authenticate(token.key)
    assert len(queries) == 0
    assert (user.pk, user.username, user.is_active, user.is_staff) == (shopper.pk, shopper.username, True, False)
    assert auth.key == token.key and auth.user_id == shopper.pk


def test_the_rest_of_the_user_loads_on_use(token, shopper):
    authenticate(token.key)
    user, _ = authenticate(token.key)
    assert user.email == shopper.email and user.date_joined == shopper.date_joined


def test_a_deleted_token_is_refused_at_once(token, client_for, shopper):
    key = token.key  # delete() clears the instance's primary key, which is the key
    authenticate(key)
    token.delete()
    assert cache.get(token_cache_key(key)) == GONE
    with pytest.raises(AuthenticationFailed):
        authenticate(key)


def test_a_request_that_read_the_token_before_its_delete_cannot_put_it_back(token):
    key = token.key
    read = Token.objects.select_related("user").get(key=key)  # a request has read the token and its user...
    token.delete()  # ...then the token is deleted...
    remember_token(read)  # ...then that request fills the cache with what it read
    with pytest.raises(AuthenticationFailed):
        authenticate(key)


def test_redis_holds_a_digest_of_the_token_not_the_token(token):
    authenticate(token.key)
    assert token.key not in token_cache_key(token.key)


def test_a_deleted_token_is_refused_by_the_api(shopper, client_for):
    client = client_for(shopper)
    assert client.get("/api/orders/").status_code == 200  # cached now
    Token.objects.filter(user=shopper).delete()  # a queryset delete sends the signals too
    refused = client.get("/api/orders/")
    assert refused.status_code == 401 and refused.json()["code"] == "not_authenticated"


def test_a_deactivated_user_is_refused_at_once(shopper, client_for):
    client = client_for(shopper)
    assert client.get("/api/orders/").status_code == 200
    shopper.is_active = False
    shopper.save()
    refused = client.get("/api/orders/")
    assert refused.status_code == 401 and refused.json()["code"] == "not_authenticated"


def test_a_promotion_to_staff_is_seen_at_once(shopper, client_for):
    client = client_for(shopper)
    assert client.get("/api/stats/").status_code == 403
    shopper.is_staff = True
    shopper.save(update_fields=["is_staff"])
    assert client.get("/api/stats/").status_code == 200


def test_a_login_does_not_drop_the_entry(token, shopper):
    authenticate(token.key)
    shopper.save(update_fields=["last_login"])
    assert cache.get(token_cache_key(token.key)) is not None


def test_an_unknown_token_is_refused_and_not_cached(db):
    with pytest.raises(AuthenticationFailed):
        authenticate("0" * 40)
    assert cache.get(token_cache_key("0" * 40)) is None


def test_the_cache_can_be_turned_off(token, settings):
    settings.TOKEN_CACHE_SECONDS = 0
    authenticate(token.key)
    assert cache.get(token_cache_key(token.key)) is None
    with CaptureQueriesContext(connection) as queries:
        authenticate(token.key)
    assert len(queries) == 1


def test_redis_down_falls_back_to_the_database(token, shopper, settings):
    from flashsale.settings.base import redis_cache

    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}  # nothing listens there
    with CaptureQueriesContext(connection) as queries:
        user, _ = authenticate(token.key)
        again, _ = authenticate(token.key)
    assert user.pk == again.pk == shopper.pk
    assert len(queries) == 2  # every request asks the database: slower, never wrong


def test_a_token_handed_out_is_cached_for_the_first_purchase(make_user, client):
    user = make_user(password="pass-word-123")
    answer = client.post("/api/auth/token/", {"username": user.username, "password": "pass-word-123"},
                         content_type="application/json")
    key = answer.json()["token"]
    with CaptureQueriesContext(connection) as queries:
        authenticate(key)
    assert len(queries) == 0


# The process's own copy (flashsale.local_tokens): trusted only while every invalidation is heard.


def _raw_redis():
    return cache.client.get_client(write=True)


def _read_from_redis_once(token):
    authenticate(token.key)  # the database answers and fills Redis
    authenticate(token.key)  # Redis answers, and this process keeps the entry


def test_a_token_read_once_is_answered_in_process(token, shopper):
    _read_from_redis_once(token)
    _raw_redis().delete(cache.make_key(token_cache_key(token.key)))  # no invalidation: only a cold Redis
    with CaptureQueriesContext(connection) as queries:
        user, _ = authenticate(token.key)
    assert user.pk == shopper.pk and len(queries) == 0


def _delivered():
    """Wait until what was just published is in this process's socket (see the decision
    record: Redis may answer the publisher a moment before it writes to subscribers)."""
    deadline = time.monotonic() + 5
    while not local_tokens._socket_has_bytes(local_tokens.tokens._pubsub) and time.monotonic() < deadline:
        time.sleep(0.001)


def test_an_invalidation_published_by_another_process_is_applied_before_the_next_lookup(token):
    _read_from_redis_once(token)
    key = cache.make_key(token_cache_key(token.key))
    other = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])  # another process's connection
    other.set(key, b"")  # what its forget_tokens does first: mark it gone (here: any non-entry)
    other.delete(key)
    other.publish(local_tokens.channel(), token_cache_key(token.key))
    other.close()
    _delivered()
    with CaptureQueriesContext(connection) as queries:
        authenticate(token.key)  # not the local copy: Redis has nothing, so the database answers
    assert len(queries) == 1


def test_invalidations_delivered_together_are_all_applied(make_user):
    tokens = [Token.objects.create(user=make_user()) for _ in range(3)]
    for each in tokens:
        _read_from_redis_once(each)
    keys = [token_cache_key(each.key) for each in tokens]
    assert all(local_tokens.tokens.get(key) is not None for key in keys)  # kept, and the socket read empty
    other = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    for key in keys:  # three messages, in the socket before the next lookup
        other.publish(local_tokens.channel(), key)
    other.close()
    _delivered()
    assert [local_tokens.tokens.get(key) for key in keys] == [None, None, None]


def test_a_lost_subscription_drops_every_local_entry(token):
    _read_from_redis_once(token)
    _raw_redis().delete(cache.make_key(token_cache_key(token.key)))
    _raw_redis().execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # what a Redis restart does to it
    with CaptureQueriesContext(connection) as queries:
        authenticate(token.key)
    assert len(queries) == 1  # invalidations may have been missed: nothing local was trusted


def test_an_entry_read_while_an_invalidation_landed_is_not_kept(token):
    seen = local_tokens.tokens.generation()
    local_tokens.tokens.forget([token_cache_key(token.key)])  # applied while the read was in flight
    local_tokens.tokens.keep(token_cache_key(token.key), {"id": 1}, seen_generation=seen)
    assert local_tokens.tokens.get(token_cache_key(token.key)) is None



# Entries heard of when they are written: a shopper's first request in a process needs no round trip.


def _listening():
    assert local_tokens.tokens.get("auth-token:nothing") is None  # subscribes this process if it was not


def _cold_redis(token):
    _raw_redis().delete(cache.make_key(token_cache_key(token.key)))  # no invalidation: only what Redis holds


def test_a_token_handed_out_is_answered_in_process_at_its_first_request(make_user):
    _listening()
    token = Token.objects.create(user=make_user())
    remember_token(token)  # what a login (or create_shoppers) does: announced on the channel
    _delivered()
    _cold_redis(token)
    with CaptureQueriesContext(connection) as queries:
        user, _ = authenticate(token.key)
    assert user.pk == token.user_id and len(queries) == 0


def test_a_process_that_subscribes_loads_the_entries_redis_holds(make_user):
    token = Token.objects.create(user=make_user())
    remember_token(token)
    _delivered()
    _raw_redis().execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # as a new process: not subscribed
    assert local_tokens.tokens.get(token_cache_key(token.key)) is None  # the loss is noticed: all dropped
    entry = local_tokens.tokens.get(token_cache_key(token.key))  # subscribes again, then loads
    assert entry is not None and entry["id"] == token.user_id
    _cold_redis(token)
    with CaptureQueriesContext(connection) as queries:
        authenticate(token.key)
    assert len(queries) == 0


def test_a_gone_mark_is_not_loaded_by_a_subscribing_process(token):
    _read_from_redis_once(token)
    key = token.key
    token.delete()  # a gone mark in Redis, and an invalidation
    _raw_redis().execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    for _noticed_then_loaded in range(2):
        assert local_tokens.tokens.get(token_cache_key(key)) is None
    with pytest.raises(AuthenticationFailed):
        authenticate(key)


def test_an_entry_refused_by_a_gone_mark_is_not_announced(token, shopper):
    _listening()
    forget_tokens([token.key])  # invalidated (a user save) just before a stale login writes it back
    remember_token(token)
    _delivered()
    assert local_tokens.tokens.get(token_cache_key(token.key)) is None
    with CaptureQueriesContext(connection) as queries:
        authenticate(token.key)
    assert len(queries) == 1  # neither copy answered: the database did


def test_an_announced_token_deleted_later_is_refused_at_once(make_user):
    _listening()
    token = Token.objects.create(user=make_user())
    remember_token(token)
    _delivered()
    assert local_tokens.tokens.get(token_cache_key(token.key)) is not None
    key = token.key
    token.delete()
    with pytest.raises(AuthenticationFailed):
        authenticate(key)


def test_an_announced_shopper_deactivated_later_is_refused_at_once(make_user):
    _listening()
    user = make_user()
    token = Token.objects.create(user=user)
    remember_token(token)
    _delivered()
    user.is_active = False
    user.save()
    with pytest.raises(AuthenticationFailed):
        authenticate(token.key)


def test_announcements_go_out_in_messages_of_at_most_a_hundred_entries(make_user):
    listener = _raw_redis().pubsub()
    listener.subscribe(local_tokens.channel())
    assert listener.get_message(timeout=1)["type"] == "subscribe"
    entries = {f"auth-token:chunk-{n}": {"id": n, "is_active": True} for n in range(250)}
    assert local_tokens.announce(entries) == 250
    sizes = []
    while (message := listener.get_message(timeout=0.5)) is not None:
        sizes.append(len(message["data"].split(b"\n")))
    listener.close()
    assert sizes == [100, 100, 50]
    assert all(local_tokens.tokens.get(key) == columns for key, columns in entries.items())


@pytest.fixture
def watching():
    assert local_tokens.tokens.listen()
    yield local_tokens.tokens
    local_tokens.tokens.stop_watching()


def test_a_listening_process_applies_announcements_without_a_lookup(make_user, watching):
    token = Token.objects.create(user=make_user())
    remember_token(token)
    key = token_cache_key(token.key)
    deadline = time.monotonic() + 5
    while key not in watching._entries and time.monotonic() < deadline:  # no lookup: the watcher's doing
        time.sleep(0.01)
    assert key in watching._entries


def test_a_listening_process_subscribes_again_after_a_loss_without_a_lookup(token, watching):
    _read_from_redis_once(token)
    lost = watching._pubsub
    _raw_redis().execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # what a Redis restart does to it
    deadline = time.monotonic() + 10
    while watching._pubsub in (None, lost) and time.monotonic() < deadline:  # no lookup meanwhile
        time.sleep(0.02)
    assert watching._pubsub not in (None, lost)  # subscribed again, having dropped what it kept
    assert watching._entries.get(token_cache_key(token.key)) is not None  # and loaded what Redis holds


def _settled():
    """Every message published so far is applied here: a marker announced last is delivered
    after them (Redis delivers in the order it ran the PUBLISHes), and lookups go on until
    one has read it."""
    marker = f"auth-token:settled-{time.monotonic_ns()}"
    columns = json.dumps({"id": 0, "is_active": False})
    other = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    other.publish(local_tokens.channel(), f"+{cache.make_key(marker)} {columns}")
    other.close()
    wait_until(lambda: local_tokens.tokens.get(marker) is not None, what="the marker announcement applied")


def test_a_message_split_across_reads_is_read_whole_and_keeps_the_subscription(make_user):
    kept, gone = (Token.objects.create(user=make_user()) for _ in range(2))
    for each in (kept, gone):
        _read_from_redis_once(each)
    # The tokens' own announcements may still be on their way: had one arrived alone, the
    # lookup below would read it, find nothing more yet and answer before the big message
    # (seen once in CI). Only the big message may be in the socket when it looks.
    _settled()
    subscription = local_tokens.tokens._pubsub
    # ~1.4 MB, several times a socket's buffer: it arrives in pieces, the gone key at its end.
    filler = " ".join(f"auth-token:filler-{n:06d}-{'x' * 40}" for n in range(25_000))
    other = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    other.publish(local_tokens.channel(), f"{filler} {token_cache_key(gone.key)}")
    other.close()
    _delivered()  # its first bytes, that is
    assert local_tokens.tokens.get(token_cache_key(gone.key)) is None
    assert local_tokens.tokens._pubsub is subscription  # not dropped by a read that ran out of bytes
    assert local_tokens.tokens.get(token_cache_key(kept.key)) is not None


def test_an_announcement_read_after_a_local_delete_does_not_bring_the_token_back(make_user):
    _listening()
    token = Token.objects.create(user=make_user())
    key = token.key
    token.delete()  # this process marks it gone in Redis and forgets it here
    # The token's announcement, published before the delete, read only now:
    late = json.dumps({"id": token.user_id, "is_active": True})
    other = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    other.publish(local_tokens.channel(), f"+{cache.make_key(token_cache_key(key))} {late}")
    other.close()
    _delivered()
    assert local_tokens.tokens.get(token_cache_key(key)) is None
    with pytest.raises(AuthenticationFailed):
        authenticate(key)
