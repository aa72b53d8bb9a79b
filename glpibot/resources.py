"""Find the bundled JSON Schemas and templates, from a checkout or an installed package."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def _bundled_dir(package: str, checkout_name: str) -> Path:
    # An installed glpibot carries the folders as packages; a bare checkout
    # on PYTHONPATH has them beside the glpibot folder only.
    try:
        return Path(str(resources.files(package)))
    except ModuleNotFoundError:
        return _CHECKOUT_ROOT / checkout_name


def schemas_dir() -> Path:
    """Return the folder holding config.schema.json, spec.schema.json and actions/."""
    return _bundled_dir("glpibot.schemas", "schemas")


def templates_dir() -> Path:
    """Return the folder holding the bundled Jinja2 templates."""
    return _bundled_dir("glpibot.templates", "templates")


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """Load a schema by file name, for example "config.schema.json"."""
    return json.loads((schemas_dir() / name).read_text(encoding="utf-8"))


def load_action_schema(action: str) -> dict[str, Any]:
    """Load the params schema of one action, from schemas/actions/<action>.json."""
    return load_schema(f"actions/{action}.json")
