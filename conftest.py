"""Loads the project's test fixtures (tests/fixtures.py) for tests/ and webapp/*/tests."""
pytest_plugins = ["tests.fixtures"]
