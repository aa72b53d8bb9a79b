"""Read secrets from the environment or from systemd credentials, never from the config file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from glpibot.errors import ConfigError
from glpibot.redact import register_secret


@dataclass(frozen=True)
class SecretSource:
    """Where one secret may come from: an environment variable or a credential file."""

    env_var: str
    credential: str  # file name inside $CREDENTIALS_DIRECTORY
    purpose: str


GLPI_CLIENT_SECRET = SecretSource("GLPIBOT_GLPI_CLIENT_SECRET", "glpi-client-secret", "the GLPI OAuth client secret")
GLPI_PASSWORD = SecretSource("GLPIBOT_GLPI_PASSWORD", "glpi-password", "the bot user's GLPI password")
MEMORY_TOKEN = SecretSource("GLPIBOT_MEMORY_TOKEN", "memory-token", "the memory service bearer token")
SSH_KEY_PASSPHRASE = SecretSource("GLPIBOT_SSH_KEY_PASSPHRASE", "ssh-key-passphrase", "the SSH key passphrase")


def credential_path(name: str) -> Path | None:
    """Return the path of a systemd credential file, or None when no credentials directory is set."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    return Path(directory) / name


def read_secret(source: SecretSource, *, required: bool = True) -> str | None:
    """Return a secret from its environment variable, else its credential file.

    The value is registered for redaction before it is returned. A missing
    required secret raises ConfigError naming the variable and the file,
    never a value.
    """
    value = os.environ.get(source.env_var)
    if value is None:
        path = credential_path(source.credential)
        if path is not None and path.is_file():
            try:
                value = path.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read {source.purpose} from credential file {path}: {exc.strerror}; "
                    "check the file's owner and mode"
                ) from None
    if value:
        register_secret(value)
        return value
    if required:
        raise ConfigError(
            f"{source.purpose} is missing: set {source.env_var}, or provide the credential file "
            f"'{source.credential}' in $CREDENTIALS_DIRECTORY (LoadCredential= in the service unit)"
        )
    return None
