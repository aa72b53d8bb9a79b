"""A GLPI 11 v2 API simulator for tests and the demo (`python -m glpibot.testing`)."""

from glpibot.testing.faults import Fault
from glpibot.testing.server import RecordedRequest
from glpibot.testing.seed import seed_demo
from glpibot.testing.simulator import GlpiSimulator

__all__ = ["Fault", "GlpiSimulator", "RecordedRequest", "seed_demo"]
