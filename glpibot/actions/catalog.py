"""The list of actions for `glpibot list-actions`, built from the handlers and their params schemas."""

from __future__ import annotations

from typing import Any

from glpibot.actions import ACTION_NAMES, get_action
from glpibot.resources import load_action_schema

# Operations that only read, for the actions whose effect depends on `operation`.
READ_ONLY_OPERATIONS = {
    "docker_compose_remote": ("ps", "logs"),
    "systemd_remote": ("status", "is-active"),
}


def _type_text(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(str(value) for value in schema["enum"])
    if "oneOf" in schema:
        return " or ".join(_type_text(branch) for branch in schema["oneOf"])
    if schema.get("type") == "array":
        return f"list of {_type_text(schema.get('items', {}))}"
    return str(schema.get("type", "any"))


def _changes_state_text(name: str) -> str:
    if name in READ_ONLY_OPERATIONS:
        read_only = ", ".join(READ_ONLY_OPERATIONS[name])
        return f"yes, except {read_only}"
    return "yes" if get_action(name).changes_state({}) else "no"


def action_catalog() -> list[dict[str, Any]]:
    """Return one entry per action: name, description, runs_on, changes_state and params."""
    catalog = []
    for name in ACTION_NAMES:
        action = get_action(name)
        schema = load_action_schema(name)
        required = set(schema.get("required", []))
        params = [
            {
                "name": param,
                "type": _type_text(param_schema),
                "required": param in required,
                "default": param_schema.get("default"),
                "description": param_schema.get("description", ""),
            }
            for param, param_schema in schema.get("properties", {}).items()
        ]
        catalog.append(
            {
                "name": name,
                "description": action.description,
                "runs_on": "runner" if action.runs_on == "runner" else "host over SSH",
                "needs_host": action.runs_on == "ssh",  # the step's `host:` names an inventory entry
                "changes_state": _changes_state_text(name),
                "params": params,
            }
        )
    return catalog
