"""`chatd serve`: the supervisor process and its workers.

The supervisor owns the listening socket (with TCP_USER_TIMEOUT, so a peer that stops
acknowledging is dropped by the kernel), the embedded Redis when there is one, and N worker
processes that inherit the socket and each run uvicorn on uvloop. A worker that dies is
restarted; an embedded Redis that dies is restarted on its AOF. SIGINT/SIGTERM stop the workers
(they close their sockets with 1012 so clients reconnect elsewhere), then Redis.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from .config import Settings
from .embedded import DataDir, EmbeddedError, EmbeddedRedis
from .lifeline import die_with_parent
from .redis_url import parse as parse_redis_url

log = logging.getLogger("chatd")

TCP_USER_TIMEOUT_MS = 30_000


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    # uvicorn writes client addresses and query strings at INFO: off unless asked for
    logging.getLogger("uvicorn.error").setLevel(level if settings.log_ips else logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True
    # the WebSocket engine narrates every handshake at INFO
    logging.getLogger("websockets").setLevel(max(level, logging.WARNING))


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise EmbeddedError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_worker(settings: Settings, redis_url: str, sock: socket.socket) -> None:
    import uvicorn

    from .app import create_app
    from .http_protocol import chatd_protocol

    app = create_app(settings, redis_url)
    # What was built so far lives as long as the process: out of the collector's sight, so a
    # full collection does not walk it again each time (measured: 45-60 ms pauses of the whole
    # loop while a 100,000-message transcript was streamed; none above 5 ms after this).
    gc.freeze()
    config = uvicorn.Config(
        # uvicorn hands WebSocket upgrades to chatd_protocol, which serves them itself; "ws"
        # only tells uvicorn that upgrades are wanted
        app, lifespan="on", loop="uvloop",
        http=chatd_protocol(settings.handshake_timeout, app.state.runtime),
        ws="websockets-sansio", log_config=None, access_log=False,
        server_header=False, timeout_graceful_shutdown=5, backlog=2048,
    )
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workers: dict[int, int] = {}  # pid -> slot
        self.stopping = False
        self.embedded: EmbeddedRedis | None = None
        self.data: DataDir | None = None

    def run(self) -> int:
        s = self.settings
        if s.redis_url is None:
            self.data = DataDir(s.data_dir)
            self.data.prepare()
            if not self.data.try_lock():
                raise EmbeddedError(f"another chatd (pid {self.data.holder()}) already serves "
                                    f"data dir {self.data.path}")
            self.embedded = EmbeddedRedis(self.data)
            self.embedded.start()
            redis_url = self.data.url()
            where = f"embedded Redis in {self.data.path}"
        else:
            redis_url = s.redis_url
            where = "Redis at " + parse_redis_url(redis_url).redacted()
        try:
            sock = listening_socket(s.host, s.port)
        except EmbeddedError:
            self._stop_redis()
            raise
        port = sock.getsockname()[1]
        log.info("chatd serving http://%s:%d with %d worker(s), %s", s.host, port, s.workers, where)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            for slot in range(s.workers):
                self._spawn(slot, redis_url, sock)
            while not self.stopping:
                self._reap(redis_url, sock)
                if self.embedded is not None and not self.embedded.alive() and not self.stopping:
                    log.error("the embedded Redis died; restarting it from its AOF")
                    try:
                        self.embedded.start()
                    except EmbeddedError as exc:
                        log.error("cannot restart the embedded Redis: %s", exc)
                time.sleep(0.2)
        finally:
            self._stop_workers()
            sock.close()
            self._stop_redis()
        log.info("chatd stopped")
        return 0

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _spawn(self, slot: int, redis_url: str, sock: socket.socket) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                die_with_parent(parent)  # a SIGKILLed supervisor takes its workers along
                if self.data is not None:
                    self.data.unlock()  # the data dir's lock is the supervisor's alone
                run_worker(self.settings, redis_url, sock)
            except BaseException:
                log.exception("worker failed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self.workers[pid] = slot

    def _reap(self, redis_url: str, sock: socket.socket) -> None:
        for pid in list(self.workers):  # one by one: waitpid(-1) would reap redis-server too
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if not done:
                continue
            slot = self.workers.pop(pid)
            if not self.stopping:
                log.error("worker %d exited (%s); restarting it", pid, _status(status))
                time.sleep(0.2)
                self._spawn(slot, redis_url, sock)

    def _stop_workers(self) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while self.workers and time.monotonic() < deadline:
            for pid in list(self.workers):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    self.workers.pop(pid, None)
            time.sleep(0.05)
        for pid in list(self.workers):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    def _stop_redis(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
        if self.data is not None:
            self.data.unlock()


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"code {os.WEXITSTATUS(status)}"
