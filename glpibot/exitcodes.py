"""Exit codes of `glpibot poll` and `glpibot process-ticket`."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # the pass completed; blocked tickets are a normal outcome
    TICKET_ERROR = 1  # a ticket hit an internal or infrastructure error
    USAGE = 2  # invalid usage or configuration
    GLPI_UNAVAILABLE = 3  # GLPI unreachable or the credentials were rejected
    LOCKED = 75  # another pass holds the lock (EX_TEMPFAIL)
