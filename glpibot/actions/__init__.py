"""The registry of trusted built-in actions; a spec can name only these."""

from __future__ import annotations

from importlib import import_module

from glpibot.actions.base import Action, ActionContext, StepResult

# name -> "module:ClassName"; new actions are added here as new handler classes.
_HANDLERS = {
    "http_check": "glpibot.actions.http_check:HttpCheck",
    "path_exists": "glpibot.actions.path_exists:PathExists",
    "docker_container_check": "glpibot.actions.docker_container:DockerContainerCheck",
    "docker_compose_remote": "glpibot.actions.docker_compose:DockerComposeRemote",
    "systemd_remote": "glpibot.actions.systemd:SystemdRemote",
}

_instances: dict[str, Action] = {}

ACTION_NAMES: tuple[str, ...] = tuple(_HANDLERS)


def get_action(name: str) -> Action:
    """Return the handler of a registered action; raise KeyError for any other name."""
    if name not in _HANDLERS:
        raise KeyError(name)
    if name not in _instances:
        module_name, class_name = _HANDLERS[name].split(":")
        handler_class = getattr(import_module(module_name), class_name)
        _instances[name] = handler_class()
    return _instances[name]


def all_actions() -> list[Action]:
    """Return every registered handler, in registry order."""
    return [get_action(name) for name in ACTION_NAMES]


__all__ = ["ACTION_NAMES", "Action", "ActionContext", "StepResult", "all_actions", "get_action"]
