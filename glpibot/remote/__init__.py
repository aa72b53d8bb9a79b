"""SSH transport: one connection per host per pass, commands without a shell on our side, SFTP stat.

`SshPool` (pool.py) opens and reuses connections; `RemoteSession`
(session.py) runs one command or stats one path; `sudo_refusal` (sudo.py)
classifies sudo's refusal messages.
"""

from glpibot.remote.pool import SshPool
from glpibot.remote.session import CommandResult, RemoteSession, RemoteStat
from glpibot.remote.sudo import sudo_refusal

__all__ = ["CommandResult", "RemoteSession", "RemoteStat", "SshPool", "sudo_refusal"]
