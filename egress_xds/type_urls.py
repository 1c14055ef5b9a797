"""xDS type URLs and the order ADS sends them in: the protocol constants, defined once for `translate` and `xds`.

Only listeners and clusters are produced today, but the ordering rule of the xDS protocol (clusters, then
endpoints, then listeners, then routes) is written down once here for every type, so adding a type later cannot
break make-before-break.
"""

from __future__ import annotations

from google.protobuf.message import Message

TYPE_URL_PREFIX = "type.googleapis.com/"

LISTENER_TYPE_URL = TYPE_URL_PREFIX + "envoy.config.listener.v3.Listener"
CLUSTER_TYPE_URL = TYPE_URL_PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE_URL = TYPE_URL_PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTE_TYPE_URL = TYPE_URL_PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET_TYPE_URL = TYPE_URL_PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"

# Clusters before endpoints before listeners before routes (xDS protocol, "eventual consistency considerations").
# Types not listed here come after, in type URL order.
ADS_ORDER: tuple[str, ...] = (
    CLUSTER_TYPE_URL,
    ENDPOINT_TYPE_URL,
    LISTENER_TYPE_URL,
    ROUTE_TYPE_URL,
    SECRET_TYPE_URL,
)

# Types whose SotW responses always carry the full set, and for which an empty first request means wildcard.
FULL_STATE_TYPES: frozenset[str] = frozenset({LISTENER_TYPE_URL, CLUSTER_TYPE_URL})

WILDCARD = "*"

_ORDER_INDEX = {type_url: index for index, type_url in enumerate(ADS_ORDER)}

# The names Envoy's own stats and tools use for each type (`cluster_manager.cds`, `listener_manager.lds`, ...).
SHORT_NAMES: dict[str, str] = {
    CLUSTER_TYPE_URL: "cds",
    ENDPOINT_TYPE_URL: "eds",
    LISTENER_TYPE_URL: "lds",
    ROUTE_TYPE_URL: "rds",
    SECRET_TYPE_URL: "sds",
}
OTHER_TYPE = "other"


def short_name(type_url: str) -> str:
    """`cds`, `lds`, ... for a known type; `other` for anything else, so that metric labels stay bounded even
    when a client asks for arbitrary type URLs."""
    return SHORT_NAMES.get(type_url, OTHER_TYPE)


def type_url_of(message: Message | type[Message]) -> str:
    """The type URL an `Any` holding this kind of message carries."""
    return TYPE_URL_PREFIX + message.DESCRIPTOR.full_name


def ads_sort_key(type_url: str) -> tuple[int, str]:
    """Sort key that puts type URLs in ADS sending order."""
    return (_ORDER_INDEX.get(type_url, len(ADS_ORDER)), type_url)


__all__ = [
    "ADS_ORDER",
    "CLUSTER_TYPE_URL",
    "ENDPOINT_TYPE_URL",
    "FULL_STATE_TYPES",
    "LISTENER_TYPE_URL",
    "OTHER_TYPE",
    "ROUTE_TYPE_URL",
    "SECRET_TYPE_URL",
    "SHORT_NAMES",
    "TYPE_URL_PREFIX",
    "WILDCARD",
    "ads_sort_key",
    "short_name",
    "type_url_of",
]
