"""Run the GLPI simulator in the foreground: `python -m glpibot.testing [--port 8088] [--seed demo|empty]`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from glpibot.testing.seed import BOT_LOGIN, seed_demo
from glpibot.testing.simulator import DEFAULT_USERS, GlpiSimulator

DEFAULT_CLIENT_SECRET = "sim-client-secret"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m glpibot.testing",
        description="Serve a simulated GLPI 11 v2 API on 127.0.0.1 until interrupted.",
    )
    parser.add_argument("--port", type=_port, default=8088, help="TCP port on 127.0.0.1 (0 picks a free one; default 8088)")
    parser.add_argument("--seed", choices=("demo", "empty"), default="demo", help="demo tickets, or none (default demo)")
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET, help="OAuth client secret the simulator accepts")
    parser.add_argument("--bot-password", default=DEFAULT_USERS[BOT_LOGIN][1], help=f"password of the {BOT_LOGIN} user")
    parser.add_argument(
        "--http-check-url",
        help="URL the demo's valid http_check requests (default: the simulator's own /health, which returns 200)",
    )
    return parser


def _port(text: str) -> int:
    """Parse --port: a whole number from 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: give a whole number from 0 to 65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value}: give a number from 0 to 65535")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    users = dict(DEFAULT_USERS)
    users[BOT_LOGIN] = (DEFAULT_USERS[BOT_LOGIN][0], args.bot_password)
    sim = GlpiSimulator(client_secret=args.client_secret, users=users, port=args.port)
    try:
        sim.start()
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}; pick another --port", file=sys.stderr)
        return 1

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    tickets = seed_demo(sim, args.http_check_url or f"{sim.url}/health") if args.seed == "demo" else {}
    secret_hint = f"'{DEFAULT_CLIENT_SECRET}'" if args.client_secret == DEFAULT_CLIENT_SECRET else "the --client-secret value"
    password_hint = (
        f"'{DEFAULT_USERS[BOT_LOGIN][1]}'" if args.bot_password == DEFAULT_USERS[BOT_LOGIN][1] else "the --bot-password value"
    )
    print(f"GLPI simulator at {sim.url} (set glpi.url to this URL in the glpibot config)", file=sys.stderr)
    print(f"OAuth client id: {sim.client_id}; bot user: {BOT_LOGIN} (id {users[BOT_LOGIN][0]})", file=sys.stderr)
    print(f"credentials: client secret {secret_hint}, bot password {password_hint}", file=sys.stderr)
    for label, ticket_id in tickets.items():
        print(f"ticket {ticket_id}: {label}", file=sys.stderr)
    print("press Ctrl-C to stop", file=sys.stderr, flush=True)

    while not stop.wait(0.5):
        pass
    sim.stop()
    print(f"stopped after {sim.request_count} API request(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
