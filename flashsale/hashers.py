"""A deliberately fast password hasher for LOAD-TEST ACCOUNTS ONLY.

`create_shoppers` makes thousands of throwaway shoppers in seconds; PBKDF2 at Django's
default cost would take minutes. Never use this for real accounts: production settings
drop it, so load-test passwords cannot log in there.
"""

from django.contrib.auth.hashers import MD5PasswordHasher


class LoadTestPasswordHasher(MD5PasswordHasher):
    algorithm = "loadtest_md5"
