"""Recognise sudo's refusal messages in a command's stderr.

glpibot always runs `sudo -n`, so sudo never prompts: when the sudoers
policy wants a password, a terminal or does not allow the command, sudo
writes one of the messages below to stderr and exits 1 without running
anything. These are operator setup faults, not failures of the target.
"""

from __future__ import annotations

import re

# Messages of sudo 1.8 and 1.9, matched at the start of a stderr line so a
# command's own output that quotes them in the middle of a line does not match.
_PASSWORD = re.compile(
    r"^sudo: (a password is required"
    r"|a terminal is required to read the password"
    r"|no tty present and no askpass program specified)",
    re.MULTILINE,
)
# The remote shell's message when sudo itself is not installed (bash and dash word it differently).
_MISSING = re.compile(r"^(?:\S+: )*(?:line \d+: )?sudo: (?:command )?not found", re.MULTILINE)
_TTY = re.compile(r"^sudo: sorry, you must have a tty to run sudo", re.MULTILINE)
_NOT_ALLOWED = re.compile(
    r"^(sudo: )?(Sorry, user \S+ is not allowed to execute|\S+ is not allowed to execute"
    r"|\S+ is not in the sudoers file)",
    re.MULTILINE,
)


def sudo_refusal(stderr: str) -> str | None:
    """Return why sudo refused to run the command, or None when it did not refuse.

    "password": sudo wants a password (no NOPASSWD rule for this command);
    "tty": the sudoers policy sets requiretty; "not-allowed": the user may not
    run this command as root at all; "missing": sudo is not installed.
    """
    if _MISSING.search(stderr):
        return "missing"
    if _TTY.search(stderr):
        return "tty"
    if _PASSWORD.search(stderr):
        return "password"
    if _NOT_ALLOWED.search(stderr):
        return "not-allowed"
    return None
