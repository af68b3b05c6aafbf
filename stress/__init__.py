"""Load tools: the asyncio load engine behind `manage.py stress` and `manage.py bench`, and a Locust file."""

import logging

# The tools print their own report; httpx's INFO line per request (health polls, read-back) would bury it.
logging.getLogger("httpx").setLevel(logging.WARNING)
