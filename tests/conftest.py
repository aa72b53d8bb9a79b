"""Shared pytest setup: fixture modules are registered here, one line each."""

pytest_plugins: list[str] = []
