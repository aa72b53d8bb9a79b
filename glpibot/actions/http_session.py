"""A requests session bound to one deadline, for checks that must end on time.

Per-socket timeouts restart with every byte received, so a server that
trickles bytes could hold a request for as long as it likes. Here every
socket the session opens is registered with a `Deadline`, and a timer thread
shuts them all down when the deadline passes. Shutting a socket down wakes a
read that is blocked in another thread (closing it does not do so reliably),
so the blocked call fails at once and the caller reports the timeout.

NOTE: name resolution runs before any socket exists, so a slow DNS server
can still delay a request to a host name past the deadline; IP addresses
and names from /etc/hosts are not affected.
"""

from __future__ import annotations

import socket
import threading
import time
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Deadline:
    """The monotonic time one check must finish by, and the sockets to shut down when it passes.

    `start()` arms the timer; `cancel()` must follow once the check is over.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._tracked: list[tuple[HTTPConnection, socket.socket]] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def passed(self) -> bool:
        return self.expired or self.remaining() <= 0

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def track(self, connection: HTTPConnection, sock: socket.socket) -> None:
        with self._lock:
            self._tracked.append((connection, sock))
            if self.expired:
                _shut_down(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection, sock in self._tracked:
                # After a TLS handshake, connection.sock is the SSL socket that replaced the raw one.
                _shut_down(connection.sock or sock)


def _shut_down(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected


class _DeadlineConnectionMixin:
    deadline: Deadline | None = None

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        if self.deadline is not None:
            self.deadline.track(self, sock)  # type: ignore[arg-type]
        return sock


class _DeadlineHTTPConnection(_DeadlineConnectionMixin, HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineConnectionMixin, HTTPSConnection):
    pass


class _DeadlinePoolMixin:
    deadline: Deadline | None = None

    def _new_conn(self) -> Any:
        connection = super()._new_conn()  # type: ignore[misc]
        connection.deadline = self.deadline
        return connection


class _DeadlineHTTPPool(_DeadlinePoolMixin, HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(_DeadlinePoolMixin, HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class _DeadlinePoolManager(urllib3.PoolManager):
    def __init__(self, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline = deadline
        self.pool_classes_by_scheme = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}

    def _new_pool(self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None) -> Any:
        pool = super()._new_pool(scheme, host, port, request_context)
        if not isinstance(pool, _DeadlinePoolMixin):
            raise TypeError(f"unexpected connection pool class {type(pool).__name__} for {scheme}")
        pool.deadline = self.deadline
        return pool


class _DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections register with a deadline and are never retried."""

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline  # set first: HTTPAdapter.__init__ calls init_poolmanager
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager = _DeadlinePoolManager(
            self._deadline, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )


class _NoRedirectSession(requests.Session):
    """A session that never builds a redirect itself.

    Session.send reads the whole body of a 3xx response (without any size cap)
    to prepare the next hop even with allow_redirects=False; with no redirect
    target it skips that, and the caller follows redirects itself.
    """

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None


def new_session(deadline: Deadline) -> requests.Session:
    """Return a session whose sockets obey `deadline`, that keeps no cookies and ignores the environment."""
    session = _NoRedirectSession()
    session.trust_env = False  # ignore HTTP_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE and .netrc
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # store no cookie at all
    adapter = _DeadlineAdapter(deadline)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
