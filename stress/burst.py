"""`make stress`: serve the stack with rate limits off and run the 2000-buyers / 100-units burst.

    python -m flashsale.embedded hold -- python -m stress.burst [BUYERS STOCK]
"""

import os
import sys

import django
from django.core.management import CommandError, call_command

from stress.stack import serving


def main(argv: list[str]) -> int:
    buyers, stock = (argv + ["2000", "100"][len(argv):])[:2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flashsale.settings.local")
    django.setup()
    with serving() as server:
        try:
            call_command("stress", "--base-url", server.url, "--buyers", buyers, "--stock", stock, "--concurrency", buyers)
        except CommandError as exc:
            print(f"stress: {exc}", file=sys.stderr)
            return exc.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
