"""Writes about shoppers: the load tools' bulk accounts (sign-up and login live in flashsale/accounts.py)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from rest_framework.authtoken.models import Token

from flashsale.authentication import CACHED_FIELDS, remember_new_shoppers

SHOPPER_BATCH = 1000


def create_shoppers(*, count: int, prefix: str = "shopper", password: str = "loadtest-pass",
                    on_progress=None) -> list[tuple[str, str]]:
    """Bulk-create `count` load-test shoppers with API tokens; return `(username, token)` pairs.

    Usernames are PREFIX-00001…; existing ones are kept and get a token if they lack one.
    Their password uses the fast load-test hasher (production settings refuse it), hashed
    once for all since they share it. Their tokens go into the token cache at once, as a
login's do. `on_progress(done, count)` is called per batch.
    """
    width = max(5, len(str(count)))
    usernames = [f"{prefix}-{n:0{width}d}" for n in range(1, count + 1)]
    hashed = make_password(password, hasher="loadtest_md5")
    User = get_user_model()
    pairs: list[tuple[str, str]] = []
    for offset in range(0, count, SHOPPER_BATCH):
        batch = usernames[offset: offset + SHOPPER_BATCH]
        with transaction.atomic():
            User.objects.bulk_create([User(username=name, password=hashed) for name in batch], ignore_conflicts=True)
            users = dict(User.objects.filter(username__in=batch).values_list("username", "id"))
            have = dict(Token.objects.filter(user_id__in=users.values()).values_list("user_id", "key"))
            new_tokens = [Token(key=Token.generate_key(), user_id=uid) for uid in users.values() if uid not in have]
            Token.objects.bulk_create(new_tokens)
            have.update({token.user_id: token.key for token in new_tokens})
        # Handed out like a login's token (POST /api/auth/token/), so cached like one.
        columns = User.objects.filter(id__in=users.values()).values(*CACHED_FIELDS)
        remember_new_shoppers({have[row["id"]]: row for row in columns if row["is_active"]})
        pairs.extend((name, have[users[name]]) for name in batch)
        if on_progress is not None:
            on_progress(len(pairs), count)
    return pairs

