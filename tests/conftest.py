"""Shared pytest setup: fixture modules are registered here, one line each."""

pytest_plugins: list[str] = []
pytest_plugins.append("tests.fixtures_ssh")
pytest_plugins.append("tests.fixtures_glpi")
pytest_plugins.append("tests.fixtures_bot")
pytest_plugins.append("tests.canary_scan")
