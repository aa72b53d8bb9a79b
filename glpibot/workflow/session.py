"""The state one pass shares between tickets: config, GLPI client, ledger, renderer, SSH pool, deadline."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from glpibot.config import Config
from glpibot.glpi.client import GlpiClient
from glpibot.ledger import Ledger
from glpibot.outputs.render import Renderer
from glpibot.workflow.effects import Effects

if TYPE_CHECKING:
    from glpibot.remote.pool import SshPool

log = logging.getLogger(__name__)


@dataclass
class PassSession:
    config: Config
    client: GlpiClient
    ledger: Ledger
    renderer: Renderer
    effects: Effects
    bot_user_id: int
    category_id: int
    deadline: float  # time.monotonic() value by which the pass must stop starting work
    ssh_key_passphrase: str | None = field(default=None, repr=False)  # a secret, so kept out of repr()
    _ssh: "SshPool | None" = field(default=None, repr=False)

    def out_of_time(self) -> bool:
        return time.monotonic() >= self.deadline

    def ssh_pool(self) -> "SshPool":
        """Return the pass's SSH pool, created on first use; one connection per host per pass."""
        if self._ssh is None:
            from glpibot.remote.pool import SshPool

            self._ssh = SshPool(self.config, key_passphrase=self.ssh_key_passphrase)
        return self._ssh

    def close(self) -> None:
        if self._ssh is not None:
            handshakes = self._ssh.handshakes
            self._ssh.close()
            log.info("closed the SSH pool after %d handshake(s)", handshakes)
            self._ssh = None
