"""An in-process Kubernetes API server for the resources egress-xds watches, faithful to the list/watch protocol.

It serves, over real HTTP/1.1 on a socket the test owns (127.0.0.1, port 0, or a socket made in a lab namespace):

- `GET` list of `egressproxies` (all namespaces or one), `clusteregressproxies`, `secrets` and `endpointslices`
  (discovery.k8s.io/v1, the replicas behind a Service) (`labelSelector`
  with `=`, `==`, `!=`, `key`, `!key`), answering the list's `metadata.resourceVersion`;
- `GET ...?watch=1&resourceVersion=N&allowWatchBookmarks=true&timeoutSeconds=T`: a chunked stream of
  `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}` lines, one JSON document per line, with every
  change after N; without N (or N=0) first a synthetic ADDED per existing object, as the real server does;
  objects that start or stop matching a label selector arrive as ADDED / DELETED;
- `410 Gone` as the real server sends it: a 200 stream holding one ERROR event with a `Status` of code 410, when N
  is older than the retained history (see `compact`), or on demand (`expire_watches`);
- `PATCH .../{name}/status` with `application/merge-patch+json` (RFC 7386) or `application/json-patch+json`
  (RFC 6902): only `.status` changes, `resourceVersion` moves, `generation` does not; 415 for other types;
- writes as the real server admits them (tests/kubernetes/admission.py): `POST` (create), `PUT` (replace, with the
  `resourceVersion` precondition), `PATCH` (merge or JSON patch; 415 for strategic merge, as for custom
  resources), `PUT`/`PATCH .../status`, `DELETE`; and `apply` from the test itself. Every custom resource written is
  pruned, defaulted and validated against its CRD in deploy/crds/ (schema and CEL rules): a rejected write answers
  422 with the server's `Status` body, and `apply` raises `Rejected` (a fixture the real server would refuse fails
  loudly). Secrets get `stringData` merged into `data`;
- `limit` / `continue` paging of lists, from a consistent snapshot; a continue token older than a `compact` is 410;
- abrupt failures: `drop_watches` cuts every open watch mid-stream (no final chunk), `stop`/`start` restart the
  server on the same port with its storage kept (etcd survives an API server restart);
- injected faults (`inject`): the next N requests of a verb (list, watch, get, create, update, patch, delete) on
  a path answer 403, 409, 422, 429 with `Retry-After`, 500, 410, ... with the server's `Status` body, or have
  their connection reset; `fail_watches` ends every open watch with an ERROR event of any code.

The test changes objects with `apply` / `delete` (as another client would); every request is recorded.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import http.server
import itertools
import json
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from egress_xds.sources.kubernetes.api import GROUP, VERSION, Kind
from tests.kubernetes.admission import Admitted, Rejected, admit_secret, crds

Obj = dict[str, Any]
DISCOVERY_GROUP = "discovery.k8s.io"
SocketFactory = Callable[[int], socket.socket]  # port (0: any) -> a bound, listening socket


@dataclass(frozen=True)
class ResourceType:
    plural: str
    kind: str
    api_version: str
    namespaced: bool
    has_generation: bool
    has_status: bool  # a status subresource: writes of the resource never change .status, and vice versa


TYPES = {
    Kind.EGRESS_PROXY.plural: ResourceType(
        Kind.EGRESS_PROXY.plural, "EgressProxy", f"{GROUP}/{VERSION}", True, True, True
    ),
    Kind.CLUSTER_EGRESS_PROXY.plural: ResourceType(
        Kind.CLUSTER_EGRESS_PROXY.plural, "ClusterEgressProxy", f"{GROUP}/{VERSION}", False, True, True
    ),
    "secrets": ResourceType("secrets", "Secret", "v1", True, False, False),
    # What `status --kubernetes` reads to find every ready replica behind the server's Service.
    "endpointslices": ResourceType("endpointslices", "EndpointSlice", f"{DISCOVERY_GROUP}/v1", True, False, False),
}
_CREATED = itertools.count(1)


@dataclass(frozen=True)
class Change:
    resource_version: int
    plural: str
    old: Obj | None
    new: Obj | None  # None: deleted (old holds the last state)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class _Watch:
    plural: str
    namespace: str | None
    selector: str
    bookmarks: bool
    connection: socket.socket
    error: Obj | None = None  # a Status to send as an ERROR event, after which the watch ends
    cut: bool = False


VERBS = ("list", "watch", "get", "create", "update", "patch", "delete")
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class Fault:
    """The next `times` requests of `verb` whose path contains `path_part` (and that `when` accepts) fail."""

    verb: str
    path_part: str
    times: int
    status: int | None  # None: reset the connection instead of answering
    retry_after: int | None = None
    message: str | None = None
    when: Callable[[Request], bool] | None = None
    hits: int = 0

    def matches(self, verb: str, request: Request) -> bool:
        return (
            self.hits < self.times
            and verb == self.verb
            and self.path_part in request.path
            and (self.when is None or self.when(request))
        )


def verb_of(method: str, name: str | None, query: dict[str, str]) -> str:
    if method == "GET":
        if name is not None:
            return "get"
        return "watch" if query.get("watch") in ("1", "true") else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())


def loopback_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


@dataclass
class FakeApiServer:
    """See the module docstring. Use as a context manager, or `start()` / `stop()`."""

    socket_factory: SocketFactory = loopback_socket
    token: str | None = None  # when set, requests must carry `Authorization: Bearer <token>`
    tls: ssl.SSLContext | None = None
    bookmark_interval: float = 0.5
    port: int = 0
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._history: list[Change] = []
        self._version = 1
        self._oldest = 1  # the oldest resourceVersion a watch may start from
        self._watches: list[_Watch] = []
        self._faults: list[Fault] = []
        self._pages: dict[str, tuple[int, list[Obj]]] = {}  # continue token -> (snapshot version, items left)
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.host = "127.0.0.1"

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> FakeApiServer:
        sock = self.socket_factory(self.port)
        self.port = sock.getsockname()[1]
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True)
        server = _HttpServer(self)
        server.socket = sock
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection (the client sees a dead server)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self.drop_watches()
        with self._lock:
            connections = list(server.connections)
        for connection in connections:
            _shutdown(connection)
        if self._thread is not None:
            self._thread.join(5)

    # -- what a test does to the cluster -------------------------------------------------------------------------

    def apply(self, obj: Obj) -> Obj:
        """Create or replace an object, admitted as the real server would (raises `Rejected`): spec changes bump
        `generation`; `status` is kept, as with a status subresource. Returns the stored object."""
        plural = _plural_of(obj)
        meta = obj.get("metadata") or {}
        key = (plural, meta.get("namespace", "") if TYPES[plural].namespaced else "", meta.get("name", ""))
        with self._lock:
            return copy.deepcopy(self._replace(plural, key, obj).obj)

    def _replace(self, plural: str, key: tuple[str, str, str], obj: Obj) -> Admitted:
        """Create or update the main resource (not its status). Call with the lock held."""
        kind = TYPES[plural]
        old = self._objects.get(key)
        new = copy.deepcopy(obj)
        new["apiVersion"], new["kind"] = kind.api_version, kind.kind
        new_meta = new.setdefault("metadata", {})
        if not kind.namespaced:
            new_meta.pop("namespace", None)
        for managed in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            new_meta.pop(managed, None)
        if old is None:
            new_meta["uid"] = str(uuid.uuid4())
            new_meta["creationTimestamp"] = _timestamp(next(_CREATED))
            if kind.has_generation:
                new_meta["generation"] = 1
        else:
            for kept in ("uid", "creationTimestamp", "generation"):
                if kept in old["metadata"]:
                    new_meta[kept] = old["metadata"][kept]
        if kind.has_status:
            new.pop("status", None)
            if old is not None and "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        admitted = self._admit(plural, new, old)
        new = admitted.obj
        if old is not None and kind.has_generation and _without_status_and_meta(old) != _without_status_and_meta(new):
            new["metadata"]["generation"] = old["metadata"]["generation"] + 1
        self._record(plural, key, old, new)
        return admitted

    def _replace_status(self, plural: str, key: tuple[str, str, str], status: Any) -> Admitted:
        """Write the status subresource: everything but `.status` stays as stored. Call with the lock held."""
        old = self._objects[key]
        new = copy.deepcopy(old)
        if status is None:
            new.pop("status", None)
        else:
            new["status"] = copy.deepcopy(status)
        admitted = self._admit(plural, new, old)
        self._record(plural, key, old, admitted.obj)
        return admitted

    def _admit(self, plural: str, new: Obj, old: Obj | None) -> Admitted:
        kind = TYPES[plural]
        crd = crds().get(kind.kind)
        if crd is not None:
            return crd.admit(new, old)
        if kind.kind == "Secret":
            return admit_secret(new)
        return Admitted(new)

    def delete(self, plural: str, name: str, namespace: str = "") -> None:
        key = (plural, namespace if TYPES[plural].namespaced else "", name)
        with self._lock:
            old = self._objects.get(key)
            if old is not None:
                self._record(plural, key, old, None)

    def get(self, plural: str, name: str, namespace: str = "") -> Obj | None:
        with self._lock:
            found = self._objects.get((plural, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._version

    def compact(self) -> None:
        """Forget the history (like etcd compaction): a watch from an older resourceVersion gets 410 Gone, and so
        does a list continued from an older snapshot."""
        with self._lock:
            self._oldest = self._version + 1
            self._history.clear()
            self._pages.clear()

    def expire_watches(self) -> None:
        """Send an ERROR 410 event on every open watch and end it, as a server whose watch cache moved on."""
        self.fail_watches(_status(410, "Expired", "The resourceVersion for the provided watch is too old."))

    def fail_watches(self, status: Obj) -> None:
        """Send `status` (a `Status` object) as an ERROR event on every open watch, then end it."""
        with self._lock:
            for watch in self._watches:
                watch.error = status
            self._lock.notify_all()

    def inject(
        self,
        verb: str,
        path_part: str,
        status: int | None = None,
        *,
        times: int = 1,
        retry_after: int | None = None,
        message: str | None = None,
        when: Callable[[Request], bool] | None = None,
    ) -> Fault:
        """Answer the next `times` `verb` requests on a path containing `path_part` with `status` (the server's
        `Status` body; `Retry-After` when given) or, with `status=None`, reset their connection. Returns the
        fault, whose `hits` counts the requests it answered."""
        assert verb in VERBS, verb
        fault = Fault(verb, path_part, times, status, retry_after, message, when)
        with self._lock:
            self._faults.append(fault)
        return fault

    def _fault_for(self, verb: str, request: Request) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(verb, request):
                    fault.hits += 1
                    return fault
        return None

    def drop_watches(self) -> None:
        """Cut every open watch connection in the middle of its chunked stream."""
        with self._lock:
            for watch in self._watches:
                watch.cut = True
                _shutdown(watch.connection)
            self._lock.notify_all()

    def open_watches(self, plural: str | None = None) -> int:
        with self._lock:
            return sum(1 for watch in self._watches if plural is None or watch.plural == plural)

    def requests_for(self, method: str, path_part: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method and path_part in r.path]

    # -- internals -------------------------------------------------------------------------------------------------

    def _record(self, plural: str, key: tuple[str, str, str], old: Obj | None, new: Obj | None) -> None:
        self._version += 1
        if new is None:
            deleted = copy.deepcopy(old)
            assert deleted is not None
            deleted["metadata"]["resourceVersion"] = str(self._version)
            del self._objects[key]
            self._history.append(Change(self._version, plural, deleted, None))
        else:
            new["metadata"]["resourceVersion"] = str(self._version)
            self._objects[key] = new
            self._history.append(Change(self._version, plural, copy.deepcopy(old), copy.deepcopy(new)))
        self._lock.notify_all()

    def _list(self, plural: str, namespace: str | None, selector: str) -> tuple[list[Obj], int]:
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for (kind, ns, _), obj in sorted(self._objects.items())
                if kind == plural and (namespace is None or ns == namespace) and _selects(selector, obj)
            ]
            return items, self._version

    def _write(
        self, verb: str, plural: str, namespace: str, name: str, subresource: str | None, content_type: str, body: Any
    ) -> tuple[int, Obj, list[str]]:
        """An HTTP write -> (code, body, warnings)."""
        kind = TYPES[plural]
        key = (plural, namespace if kind.namespaced else "", name)
        resource = _resource_name(plural)
        with self._lock:
            old = self._objects.get(key)
            try:
                if verb == "create":
                    if not isinstance(body, dict):
                        return 400, _status(400, "BadRequest", "the body of the request is not an object"), []
                    meta = body.setdefault("metadata", {})
                    if kind.namespaced:
                        if meta.get("namespace", namespace) != namespace:
                            message = (
                                "the namespace of the provided object does not match the namespace sent on the request"
                            )
                            return 400, _status(400, "BadRequest", message), []
                        meta["namespace"] = namespace
                    key = (plural, namespace if kind.namespaced else "", str(meta.get("name", "")))
                    if key in self._objects:
                        message = f'{resource} "{meta.get("name")}" already exists'
                        return 409, _status(409, "AlreadyExists", message), []
                    admitted = self._replace(plural, key, body)
                    return 201, copy.deepcopy(admitted.obj), admitted.warnings
                if old is None:
                    return 404, _status(404, "NotFound", f'{resource} "{name}" not found'), []
                if verb == "delete":
                    self._record(plural, key, old, None)
                    return 200, _status(200, "", "") | {"status": "Success"}, []
                if verb == "update":
                    if not isinstance(body, dict):
                        return 400, _status(400, "BadRequest", "the body of the request is not an object"), []
                    wanted = str((body.get("metadata") or {}).get("resourceVersion") or "")
                    if wanted and wanted != old["metadata"]["resourceVersion"]:
                        message = (
                            f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
                            "please apply your changes to the latest version and try again"
                        )
                        return 409, _status(409, "Conflict", message), []
                    patched = body
                elif content_type == "application/merge-patch+json":
                    patched = merge_patch(copy.deepcopy(old), body)
                elif content_type == "application/json-patch+json":
                    try:
                        patched = json_patch(copy.deepcopy(old), body)
                    except (KeyError, IndexError, ValueError, TypeError) as error:
                        return 422, _status(422, "Invalid", f"json patch: {error}"), []
                else:
                    message = (
                        "the body of the request was in an unknown format - accepted media types include: "
                        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    )
                    return 415, _status(415, "UnsupportedMediaType", message), []
                if subresource == "status":
                    admitted = self._replace_status(plural, key, patched.get("status"))
                else:
                    admitted = self._replace(plural, key, patched)
            except Rejected as rejected:
                return rejected.code, rejected.status, []
            return 200, copy.deepcopy(admitted.obj), admitted.warnings

    def _page(self, plural: str, namespace: str | None, selector: str, query: dict[str, str]) -> tuple[int, Obj]:
        """A list, or one page of it (`limit`, `continue`), every page from the first page's snapshot."""
        with self._lock:
            token = query.get("continue", "")
            if token:
                if token not in self._pages:
                    message = (
                        "The provided continue parameter is too old to display a consistent list result. You can "
                        "start a new list without the continue parameter."
                    )
                    return 410, _status(410, "Expired", message)
                version, items = self._pages.pop(token)
            else:
                items, version = self._list(plural, namespace, selector)
            limit = int(query.get("limit") or 0)
            metadata: Obj = {"resourceVersion": str(version)}
            if 0 < limit < len(items):
                following = uuid.uuid4().hex
                self._pages[following] = (version, items[limit:])
                metadata |= {"continue": following, "remainingItemCount": len(items) - limit}
                items = items[:limit]
        kind = TYPES[plural]
        return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": metadata, "items": items}

    def _events_after(self, watch: _Watch, position: int) -> Iterator[tuple[str, Obj]]:
        for change in self._history:
            if change.resource_version <= position or change.plural != watch.plural:
                continue
            obj = change.new if change.new is not None else change.old
            assert obj is not None
            if watch.namespace is not None and obj["metadata"].get("namespace") != watch.namespace:
                continue
            before = change.old is not None and _selects(watch.selector, change.old)
            after = change.new is not None and _selects(watch.selector, change.new)
            if change.new is None and before:
                yield "DELETED", change.old  # type: ignore[misc]
            elif before and after:
                yield "MODIFIED", change.new  # type: ignore[misc]
            elif after:
                yield "ADDED", change.new  # type: ignore[misc]
            elif before and change.new is not None:
                # stopped matching the selector: the watcher sees it go away, in its new state
                yield "DELETED", change.new


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: FakeApiServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self.api = api
        self.connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.api._lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.api._lock:
            self.connections.discard(request)
        super().shutdown_request(request)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    @property
    def api(self) -> FakeApiServer:
        return self.server.api

    def do_GET(self) -> None:
        route = self._route()
        if route is None:
            return
        plural, namespace, name, subresource, query = route
        if name is not None or subresource is not None:
            found = self.api.get(plural, name or "", namespace or "")
            self._json(200 if found else 404, found or _status(404, "NotFound", f"{plural} {name} not found"))
            return
        selector = query.get("labelSelector", "")
        if query.get("watch") in ("1", "true"):
            self._watch(plural, namespace, selector, query)
            return
        self._json(*self.api._page(plural, namespace, selector, query))

    def do_POST(self) -> None:
        self._write("create")

    def do_PUT(self) -> None:
        self._write("update")

    def do_PATCH(self) -> None:
        self._write("patch")

    def do_DELETE(self) -> None:
        self._write("delete")

    def _write(self, verb: str) -> None:
        route = self._route()
        if route is None:
            return
        plural, namespace, name, subresource, _query = route
        if (
            (verb == "create") != (name is None)
            or subresource not in (None, "status")
            or (subresource == "status" and verb not in ("update", "patch"))
        ):
            self._json(405, _status(405, "MethodNotAllowed", f"the server does not allow this method: {verb}"))
            return
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        code, body, warnings = self.api._write(
            verb, plural, namespace or "", name or "", subresource, content_type, self._body()
        )
        self._json(code, body, warnings=[f"299 - {json.dumps(warning)}" for warning in warnings])

    # -- helpers -------------------------------------------------------------------------------------------------

    def _route(self) -> tuple[str, str | None, str | None, str | None, dict[str, str]] | None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        headers = {key.lower(): value for key, value in self.headers.items()}
        body = None
        if self.command in ("POST", "PUT", "PATCH"):
            body = self._read_body()
        request = Request(self.command, parts.path, query, headers, body)
        with self.api._lock:
            self.api.requests.append(request)
        if self.api.token is not None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or token != self.api.token:
                self._json(401, _status(401, "Unauthorized", "Unauthorized"))
                return None
        segments = [segment for segment in parts.path.split("/") if segment]
        if segments[:3] in (["apis", GROUP, VERSION], ["apis", DISCOVERY_GROUP, "v1"]):
            rest = segments[3:]
        elif segments[:2] == ["api", "v1"]:
            rest = segments[2:]
        else:
            self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
            return None
        namespace = None
        if len(rest) >= 2 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or rest[0] not in TYPES or len(rest) > 3:
            self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
            return None
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        fault = self.api._fault_for(verb_of(self.command, name, query), request)
        if fault is not None:
            self._answer_fault(fault, plural, name, subresource, namespace)
            return None
        return plural, namespace, name, subresource, query

    def _answer_fault(
        self, fault: Fault, plural: str, name: str | None, subresource: str | None, namespace: str | None
    ) -> None:
        if fault.status is None:  # a connection reset: RST, no answer at all
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            return
        resource = _resource_name(plural)
        what = f'{resource} "{name}"' if name else resource
        messages = {
            403: f'{what} is forbidden: User "system:serviceaccount:egress-xds:egress-xds" cannot {fault.verb} '
            f'resource "{plural}{"/" + subresource if subresource else ""}" in API group '
            f'"{GROUP if resource != plural else ""}"' + (f' in the namespace "{namespace}"' if namespace else ""),
            409: f"Operation cannot be fulfilled on {what}: the object has been modified; please apply your "
            "changes to the latest version and try again",
            410: "too old resource version: 1 (2)",
            422: f"{what} is invalid",
            429: "Too many requests, please try again later.",
            500: "Internal error occurred: etcdserver: request timed out",
        }
        body = _status(
            fault.status, REASONS.get(fault.status, "Unknown"), fault.message or messages.get(fault.status, "")
        )
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
            body["details"] = {"retryAfterSeconds": fault.retry_after}
        self._json(fault.status, body, headers=headers)

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length) if length else b""
        self._raw_body = json.loads(raw) if raw else None
        return self._raw_body

    def _body(self) -> Any:
        return getattr(self, "_raw_body", None)

    def _json(
        self, code: int, body: Obj, *, headers: dict[str, str] | None = None, warnings: list[str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        for warning in warnings or []:
            self.send_header("Warning", warning)
        self.end_headers()
        self.wfile.write(data)

    def _watch(self, plural: str, namespace: str | None, selector: str, query: dict[str, str]) -> None:
        api = self.api
        watch = _Watch(plural, namespace, selector, query.get("allowWatchBookmarks") == "true", self.connection)
        timeout = float(query.get("timeoutSeconds", "1800"))
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        requested = query.get("resourceVersion", "")
        with api._lock:
            api._watches.append(watch)
            position = int(requested) if requested not in ("", "0") else api._version
            initial = [] if requested not in ("", "0") else api._list(plural, namespace, selector)[0]
            too_old = requested not in ("", "0") and position + 1 < api._oldest
        try:
            if too_old:
                self._event("ERROR", _status(410, "Expired", f"too old resource version: {position} ({api._oldest})"))
                self._end()
                return
            for obj in initial:
                self._event("ADDED", obj)
            last_bookmark = time.monotonic()
            while True:
                with api._lock:
                    if not watch.cut and watch.error is None and api._server is not None:
                        api._lock.wait(0.05)
                    if watch.cut or api._server is None:
                        return
                    if watch.error is not None:
                        pending: list[tuple[str, Obj]] = [("ERROR", watch.error)]
                    else:
                        pending = [(kind, copy.deepcopy(obj)) for kind, obj in api._events_after(watch, position)]
                        position = api._version
                for event_type, obj in pending:
                    self._event(event_type, obj)
                if watch.error is not None or time.monotonic() >= deadline:
                    self._end()
                    return
                if watch.bookmarks and time.monotonic() - last_bookmark >= api.bookmark_interval:
                    last_bookmark = time.monotonic()
                    kind = TYPES[plural]
                    marker = {"kind": kind.kind, "apiVersion": kind.api_version}
                    self._event("BOOKMARK", {**marker, "metadata": {"resourceVersion": str(position)}})
        except OSError:
            return  # the client went away, or drop_watches cut the connection
        finally:
            with api._lock:
                if watch in api._watches:
                    api._watches.remove(watch)
            self.close_connection = True

    def _event(self, event_type: str, obj: Obj) -> None:
        line = json.dumps({"type": event_type, "object": obj}).encode() + b"\n"
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")


# -- the protocol's pure parts ---------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch: add, replace, remove, test (what status writers use)."""
    if not isinstance(operations, list):
        raise ValueError("expected a list of operations")
    for operation in operations:
        path = [_unescape(part) for part in operation["path"].split("/")[1:]]
        parent = document
        for part in path[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = path[-1] if path else ""
        op = operation["op"]
        if op == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent[last]
            if current != operation["value"]:
                raise ValueError(f"test failed at {operation['path']}")
        elif op in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if op == "add":
                    parent.insert(index, operation["value"])
                else:
                    parent[index] = operation["value"]
            else:
                if op == "replace" and last not in parent:
                    raise KeyError(operation["path"])
                parent[last] = operation["value"]
        elif op == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        else:
            raise ValueError(f"unsupported op {op!r}")
    return document


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _selects(selector: str, obj: Obj) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (term.strip() for term in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _status(code: int, reason: str, message: str) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def crds_plurals() -> set[str]:
    return {plural for plural, kind in TYPES.items() if kind.api_version == f"{GROUP}/{VERSION}"}


def _resource_name(plural: str) -> str:
    """`secrets`, `egressproxies.egress-xds.io`: the resource as the server's Status messages name it."""
    group, _, _version = TYPES[plural].api_version.rpartition("/")
    return f"{plural}.{group}" if group else plural


def _plural_of(obj: Obj) -> str:
    for plural, kind in TYPES.items():
        if kind.kind == obj.get("kind"):
            return plural
    raise ValueError(f"unknown kind {obj.get('kind')!r}")


def _without_status_and_meta(obj: Obj) -> Obj:
    return {key: value for key, value in obj.items() if key not in ("status", "metadata")}


def _timestamp(sequence: int) -> str:
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    return (base + datetime.timedelta(seconds=sequence)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shutdown(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
