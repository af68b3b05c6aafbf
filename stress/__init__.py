"""Load tools: the asyncio load engine behind `manage.py stress` and `manage.py bench`, and a Locust file."""
