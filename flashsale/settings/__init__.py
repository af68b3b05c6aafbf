"""Settings split by environment: base (everything, from the env), local, test, production."""
