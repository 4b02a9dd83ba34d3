"""API processes, each listening on a socket of its own.

uvicorn's multi-process mode hands one listening socket to every process, and whichever process
wakes first accepts: billing systems open a handful of keep-alive connections at once, and in our
measurements all 16 of a load test's connections often landed in one process while the other
idled (968 against 2124 packets/s for the same two processes). Here every process gets its own
socket bound with ``SO_REUSEPORT``, so the kernel spreads new connections over them by hash. A
process that dies is replaced on the same socket (a socket without a process would swallow the
connections hashed to it); SIGTERM or SIGINT stops them all.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from multiprocessing.context import SpawnProcess

import uvicorn
from uvicorn._subprocess import get_subprocess

log = logging.getLogger(__name__)

CHECK_SECONDS = 0.5
STOP_SECONDS = 30


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)  # uvicorn's default backlog
    sock.set_inheritable(True)
    return sock


def run_api_processes(config: uvicorn.Config, count: int) -> None:
    """Serve `config` with `count` processes until SIGTERM or SIGINT; one process runs in this one."""
    if count == 1:
        uvicorn.Server(config).run()
        return
    sockets = [listening_socket(config.host, config.port) for _ in range(count)]
    stop = threading.Event()
    previous = {number: signal.signal(number, lambda *_: stop.set()) for number in (signal.SIGTERM, signal.SIGINT)}
    processes = [_start(config, sock) for sock in sockets]
    try:
        while not stop.wait(CHECK_SECONDS):
            for index, process in enumerate(processes):
                if not process.is_alive():
                    log.warning("API process %s exited with %s; starting another", process.pid, process.exitcode)
                    processes[index] = _start(config, sockets[index])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(STOP_SECONDS)
            if process.is_alive():
                process.kill()
        for sock in sockets:
            sock.close()
        for number, handler in previous.items():
            signal.signal(number, handler)


def _start(config: uvicorn.Config, sock: socket.socket) -> SpawnProcess:
    process = get_subprocess(config, uvicorn.Server(config).run, [sock])
    process.start()
    return process
