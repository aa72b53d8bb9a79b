"""A time limit on each whole GLPI request: connection, headers and body together.

The `timeout` of requests applies to each socket operation and restarts with
every byte received, so a server or proxy that sends its response a byte at a
time can hold a request, and with it the pass, for as long as it likes.
Every connection the client's session opens is registered with a
`RequestWatchdog`; while a request runs a timer is armed, and when it fires
the sockets are shut down. Shutting a socket down wakes a read blocked in
another thread at once, so the request fails and the client reports a timeout.

NOTE: until the TCP connection is up there is no socket to shut down, so
name resolution and the connect stay bounded only by the per-operation
timeout. With an HTTP proxy from the environment, requests uses its own
proxy pool manager and the watchdog sees no socket at all.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class RequestWatchdog:
    """Shut down the registered connections' sockets when the current request runs out of time.

    The client sends one request at a time, so every registered socket is
    either the one in use or idle in the pool. urllib3 replaces an idle
    socket that it finds shut down.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: "weakref.WeakSet[HTTPConnection]" = weakref.WeakSet()
        self._generation = 0
        self.fired = False  # whether the timer of the last `limit` block fired

    def track(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._connections.add(connection)

    @contextlib.contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        """Run the block with a timer that shuts the sockets down after `seconds`."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            self.fired = False
        timer = threading.Timer(seconds, self._fire, args=(generation,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            with self._lock:
                self._generation += 1  # a timer already running finds a newer generation and does nothing

    def _fire(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self.fired = True
            for connection in list(self._connections):
                sock = connection.sock
                if sock is None:
                    continue
                try:
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed


class _WatchedPoolMixin:
    watchdog: RequestWatchdog | None = None

    def _new_conn(self) -> Any:
        connection = super()._new_conn()  # type: ignore[misc]
        if self.watchdog is not None:
            self.watchdog.track(connection)
        return connection


class _WatchedHTTPPool(_WatchedPoolMixin, HTTPConnectionPool):
    pass


class _WatchedHTTPSPool(_WatchedPoolMixin, HTTPSConnectionPool):
    pass


class _WatchedPoolManager(urllib3.PoolManager):
    def __init__(self, watchdog: RequestWatchdog, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watchdog = watchdog
        self.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def _new_pool(self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None) -> Any:
        pool = super()._new_pool(scheme, host, port, request_context)
        if not isinstance(pool, _WatchedPoolMixin):
            raise TypeError(f"unexpected connection pool class {type(pool).__name__} for {scheme}")
        pool.watchdog = self.watchdog
        return pool


class _WatchedAdapter(HTTPAdapter):
    def __init__(self, watchdog: RequestWatchdog) -> None:
        self._watchdog = watchdog  # set first: HTTPAdapter.__init__ calls init_poolmanager
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager = _WatchedPoolManager(
            self._watchdog, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )


def watch_session(session: requests.Session, watchdog: RequestWatchdog) -> None:
    """Mount adapters on `session` whose connections register with `watchdog`."""
    adapter = _WatchedAdapter(watchdog)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
