"""tcp_proxy network filters: CONNECT tunnels to a proxy, pass-through, deny."""

from __future__ import annotations

from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.config.listener.v3.listener_components_pb2 import Filter
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy
from google.protobuf.wrappers_pb2 import UInt32Value

from egress_xds.policy.model import Credentials, Proxy
from egress_xds.translate import names
from egress_xds.translate.access_log import KIND_DENY, KIND_DIRECT, KIND_PROXY, connection_logs
from egress_xds.translate.protobuf import typed

TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
PROXY_AUTHORIZATION = "Proxy-Authorization"

# The CONNECT authority for captured traffic: the TLS SNI with the original port when the client sent an SNI, or
# the original destination `ip:port` when it did not (raw TCP, TLS to an IP; %REQUESTED_SERVER_NAME% would be "-").
# Two chains rather than one CEL expression: Envoy 1.40's CEL has no int-to-string conversion for the port.
TARGET_BY_NAME = "%REQUESTED_SERVER_NAME%:%DOWNSTREAM_LOCAL_PORT%"
TARGET_BY_ADDRESS = "%DOWNSTREAM_LOCAL_ADDRESS%"


def tunnel_filter(proxy: Proxy, target: str, stat_prefix: str) -> Filter:
    """Wrap the stream in `CONNECT target` to the proxy, with the proxy's credentials if it has any."""
    tcp_proxy = TcpProxy(stat_prefix=stat_prefix, cluster=names.proxy_connect_cluster(proxy.name))
    tcp_proxy.tunneling_config.hostname = target
    if proxy.credentials is not None:
        tcp_proxy.tunneling_config.headers_to_add.append(proxy_authorization_header(proxy.credentials))
    if len(proxy.endpoints) > 1:
        # Until the health check has marked a dead primary, a second attempt lands on the failover endpoint.
        tcp_proxy.max_connect_attempts.CopyFrom(UInt32Value(value=2))
    tcp_proxy.access_log.extend(connection_logs(stat_prefix, KIND_PROXY, proxy.name, target))
    return Filter(name=TCP_PROXY_FILTER, typed_config=typed(tcp_proxy))


def cluster_filter(cluster: str, stat_prefix: str, target: str | None = None) -> Filter:
    """Plain TCP to a cluster: the pass-through (original destination), the deny cluster, or a direct target
    (an explicit listener's `target`, named in the access log)."""
    tcp_proxy = TcpProxy(stat_prefix=stat_prefix, cluster=cluster)
    kind = KIND_DENY if cluster == names.DENY_CLUSTER else KIND_DIRECT
    tcp_proxy.access_log.extend(connection_logs(stat_prefix, kind, tunnel_target=target))
    return Filter(name=TCP_PROXY_FILTER, typed_config=typed(tcp_proxy))


def proxy_authorization_header(credentials: Credentials) -> HeaderValueOption:
    return HeaderValueOption(
        header=HeaderValue(key=PROXY_AUTHORIZATION, value=credentials.header_value),
        append_action=HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )
