"""Bulk-create load-test shoppers with API tokens."""

import sys
import time

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

BATCH = 1000


class Command(BaseCommand):
    help = (
        "Create N shopper accounts with API tokens, fast enough for 10,000 (bulk inserts). Their "
        "passwords use a deliberately fast hash meant for LOAD-TEST ACCOUNTS ONLY (production "
        "settings refuse it). Existing usernames are kept and get a token if they lack one."
    )

    def add_arguments(self, parser):
        parser.add_argument("count", type=int, help="how many shoppers (1 to 1,000,000)")
        parser.add_argument("--prefix", default="shopper", help="usernames are PREFIX-00001… (default: shopper)")
        parser.add_argument("--password", default="loadtest-pass", help="the password of every account")
        parser.add_argument("--tokens", metavar="FILE", help="write `username,token` lines to FILE")

    def handle(self, *args, count, prefix, password, tokens, **options):
        if not 1 <= count <= 1_000_000:
            raise CommandError("count must be between 1 and 1,000,000")
        started = time.perf_counter()
        width = max(5, len(str(count)))
        usernames = [f"{prefix}-{n:0{width}d}" for n in range(1, count + 1)]
        # One hash for all: they share a password, and the fast hasher makes this instant.
        hashed = make_password(password, hasher="loadtest_md5")
        User = get_user_model()
        pairs = []
        for offset in range(0, count, BATCH):
            batch = usernames[offset: offset + BATCH]
            with transaction.atomic():
                User.objects.bulk_create(
                    [User(username=name, password=hashed) for name in batch], ignore_conflicts=True
                )
                users = dict(User.objects.filter(username__in=batch).values_list("username", "id"))
                have = dict(Token.objects.filter(user_id__in=users.values()).values_list("user_id", "key"))
                new_tokens = [Token(key=Token.generate_key(), user_id=uid) for uid in users.values() if uid not in have]
                Token.objects.bulk_create(new_tokens)
                have.update({token.user_id: token.key for token in new_tokens})
            pairs.extend((name, have[users[name]]) for name in batch)
            if sys.stdout.isatty():
                self.stdout.write(f"\r  {min(offset + BATCH, count):,}/{count:,} shoppers", ending="")
        if sys.stdout.isatty():
            self.stdout.write("")
        if tokens:
            with open(tokens, "w") as out:
                out.writelines(f"{name},{key}\n" for name, key in pairs)
        elapsed = time.perf_counter() - started
        where = f", tokens in {tokens}" if tokens else ""
        self.stdout.write(self.style.SUCCESS(f"{count:,} shoppers ready in {elapsed:.1f}s{where}."))
