"""A client process: `ClientSpec.count` simulated Envoys on one event loop, answering the coordinator's pipe
messages (`bench.fanout.messages`). Its CPU is reported so that the report shows the client is not the limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.connection import Connection

from bench.fanout.envoy import Dialect, Envoy, Held, Tally, keep_up
from bench.fanout.h2 import H2Channel, request_headers
from bench.fanout.messages import (
    AskCpu,
    AskProgress,
    AskTimes,
    ClientSpec,
    Connect,
    Connecting,
    Cpu,
    Loaded,
    Progress,
    Request,
    Stop,
    Times,
)
from bench.fanout.procfs import cpu_seconds, raise_fd_limit

SERVICE = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
MiB = 1024 * 1024


def child_setup(cpus: Sequence[int]) -> None:
    # Ctrl-C reaches the whole process group: let the coordinator stop the children in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_fd_limit()
    if cpus:
        os.sched_setaffinity(0, cpus)


def client_main(conn: Connection, cpus: Sequence[int], spec: ClientSpec) -> None:
    child_setup(cpus)
    asyncio.run(_client(conn, spec))


def _grpc_channel(port: int, method: str) -> tuple[Callable[[Envoy], Awaitable[str]], Callable[[], Awaitable[None]]]:
    """The grpc.aio transport (--transport grpc), to cross-check the light one (one replica only)."""
    import grpc

    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}",
        options=[
            ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel, not one shared subchannel
            ("grpc.max_receive_message_length", 64 * MiB),
        ],
    )
    # Requests are serialized by `Dialect`, responses are read by `envelope`: bytes both ways.
    open_call = channel.stream_stream(SERVICE + method, request_serializer=None, response_deserializer=None)

    async def attempt(envoy: Envoy) -> str:
        call = open_call()
        try:
            await call.write(envoy.start())
            async for response in call:
                requests, type_url, version = envoy.on_response(response)
                for request in requests:
                    await call.write(request)
                envoy.held.got(type_url, version, port)
            return "stream ended by the server"
        except grpc.aio.AioRpcError as error:
            return f"{error.code().name}: {error.details()}"
        finally:
            call.cancel()

    async def close() -> None:
        await channel.close(grace=None)

    return attempt, close


async def _client(conn: Connection, spec: ClientSpec) -> None:
    dialect = Dialect(spec.protocol)
    tally = Tally()
    held = [Held(tally) for _ in range(spec.count)]
    envoys = [Envoy(dialect, f"bench-{spec.first + index}", held[index]) for index in range(spec.count)]
    opening = asyncio.Semaphore(spec.in_flight if spec.in_flight > 0 else spec.count)
    tasks: list[asyncio.Task[None]] = []
    closers: list[Callable[[], Awaitable[None] | None]] = []
    closed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def connect() -> None:
        headers = request_headers(SERVICE + dialect.method, f"127.0.0.1:{spec.ports[0]}")
        for start in range(0, spec.count, spec.per_channel):
            attempt: Callable[[Envoy], Awaitable[str]]
            if spec.transport == "grpc":
                attempt, close = _grpc_channel(spec.ports[0], dialect.method)
                closers.append(close)
            else:
                channel = H2Channel(spec.ports, headers)
                attempt = channel.attempt
                closers.append(channel.close)
            for envoy in envoys[start : start + spec.per_channel]:
                tasks.append(asyncio.create_task(keep_up(envoy, attempt, opening, tally)))

    def handle(request: Request) -> None:
        if isinstance(request, Connect):
            connect()
            conn.send(Connecting())
        elif isinstance(request, AskProgress):
            conn.send(Progress(tally.done(request.goal, held), tally.gave_up, tally.failures))
        elif isinstance(request, AskTimes):
            first_error = next((state.error for state in held if state.error is not None), None)
            conn.send(Times([state.time_of(request.goal) for state in held], first_error))
        elif isinstance(request, AskCpu):
            conn.send(Cpu(cpu_seconds()))
        elif isinstance(request, Stop):
            closed.set()

    def readable() -> None:
        try:
            while conn.poll():
                handle(conn.recv())
        except (EOFError, OSError):  # the coordinator is gone: stop
            closed.set()

    loop.add_reader(conn.fileno(), readable)
    conn.send(Loaded(os.getpid()))
    await closed.wait()
    loop.remove_reader(conn.fileno())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for close in closers:
        result = close()
        if result is not None:
            await result
    with contextlib.suppress(OSError):
        conn.send(Cpu(cpu_seconds()))
