"""A listening socket inside a lab's network namespace, made by a thread of this process.

Network namespaces are per thread on Linux: a short-lived thread joins the namespace (setns), creates and binds
the socket, and ends. The socket stays in that namespace, so the in-process fake API server is reachable from
processes in the pod namespace (on its loopback) while the test still changes the objects directly.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from pathlib import Path

from tests.kubernetes.apiserver import SocketFactory, loopback_socket

CLONE_NEWNET = 0x40000000


def socket_in_netns(netns: str) -> SocketFactory:
    def make(port: int) -> socket.socket:
        made: list[socket.socket] = []
        failed: list[BaseException] = []

        def run() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(Path("/var/run/netns") / netns, os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        errno = ctypes.get_errno()
                        raise OSError(errno, f"setns into {netns}: {os.strerror(errno)}")
                finally:
                    os.close(fd)
                made.append(loopback_socket(port))
            except BaseException as error:
                failed.append(error)

        thread = threading.Thread(target=run, name=f"netns-{netns}")
        thread.start()
        thread.join(10)
        if failed:
            raise failed[0]
        return made[0]

    return make
