"""Everything a human or a tool needs next to ADS on the xDS port: grpc.health.v1, CSDS, the admin service, the
access-log service Envoys stream their traffic to (egress_xds/traffic/) and gRPC server reflection, so that
`grpcurl -plaintext HOST:PORT list | describe | <call>` works with no proto files.

Reflection answers from the process-wide protobuf descriptor pool. Importing a generated module registers its file
there, so each service's module is imported here, the envoy ones included: a server that only imported the
message modules (as the ADS code does) would list ADS but fail to describe it.
"""

from __future__ import annotations

import grpc
from envoy.service.accesslog.v3 import als_pb2  # noqa: F401 - registers the access-log service descriptor
from envoy.service.discovery.v3 import ads_pb2  # noqa: F401 - registers the ADS service descriptor
from envoy.service.status.v3 import csds_pb2  # noqa: F401 - registers the CSDS service descriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from egress_xds.admin import csds, service
from egress_xds.admin.state import DebugView
from egress_xds.traffic import service as traffic_service
from egress_xds.xds import server as xds_server
from egress_xds.xds.server import AdsServer


async def add_debug_services(ads: AdsServer, state: DebugView) -> health_aio.HealthServicer:
    """Register health, CSDS, admin and reflection on an `AdsServer`'s gRPC server (before `start`).

    Health reports SERVING for the server ("") and for each service, and NOT_SERVING as soon as `stop`
    begins, so a load balancer stops sending new Envoys to a replica that is going away.
    """
    server = ads.grpc
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    csds.ClientStatusService(state).add_to_server(server)
    service.AdminService(state).add_to_server(server)
    traffic_service.AccessLogService(state.traffic, state.policies).add_to_server(server)
    served = (
        xds_server.SERVICE_NAME,
        csds.SERVICE_NAME,
        service.SERVICE_NAME,
        traffic_service.SERVICE_NAME,
        health.SERVICE_NAME,
    )
    for name in ("", *served):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*served, reflection.SERVICE_NAME), server)
    ads.on_stopping(health_servicer.enter_graceful_shutdown)
    return health_servicer


async def start_health_server(listen: str, health_servicer: health_aio.HealthServicer) -> tuple[grpc.aio.Server, int]:
    """A plaintext server with grpc.health.v1 only, answering from the xDS port's health servicer (so it turns
    NOT_SERVING with it). For probes that cannot speak TLS (the kubelet's `grpc:` probe) when the xDS port
    requires it: health says nothing but SERVING / NOT_SERVING. Raises RuntimeError when it cannot bind."""
    server = grpc.aio.server(options=(("grpc.so_reuseport", 0),))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise RuntimeError(f"cannot listen on {listen}")
    await server.start()
    return server, port
