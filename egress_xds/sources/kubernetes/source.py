"""`serve --kubernetes`: three list-watch threads feed a `Reconciler` on the event loop; its outcome is published
through the same path as a policy file reload, and its verdicts go to the resources' status.

Threads never touch the reconciler: they hand each list and event to the loop with `call_soon_threadsafe`, and a
burst of events (a relist of hundreds of resources) is reconciled once, on the next turn of the loop.

`start()` returns only after the first list of every type: publishing before the Secrets are known would declare
every resource that names one invalid and push a wrong configuration to Envoys that were doing fine.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from egress_xds.policy.model import PolicySet
from egress_xds.sources.kubernetes.api import CREDENTIALS_LABEL_SELECTOR, GROUP, VERSION, Kind, ResourceRef
from egress_xds.sources.kubernetes.client import ClientSettings, api_client, describe
from egress_xds.sources.kubernetes.reconcile import Reconciler, resource_ref
from egress_xds.sources.kubernetes.status_writer import StatusWriter
from egress_xds.sources.kubernetes.watch import Item, ListWatcher, WatchSettings

_log = logging.getLogger("egress_xds.sources.kubernetes")

SECRETS = "Secret"
STOP_SECONDS = 5.0


@dataclass(frozen=True)
class KubernetesOptions:
    client: ClientSettings = field(default_factory=ClientSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)


class KubernetesSource:
    """Follows EgressProxy, ClusterEgressProxy and labelled Secrets; calls `on_policies` after each change."""

    def __init__(
        self,
        options: KubernetesOptions,
        on_policies: Callable[[PolicySet], None],
        *,
        environ: Mapping[str, str],
    ) -> None:
        self._options = options
        self._on_policies = on_policies
        self._environ = environ
        self._reconciler = Reconciler()
        self._policies = PolicySet(())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._api: client.ApiClient | None = None
        self._watchers: list[ListWatcher] = []
        self._unsynced: set[str] = set()
        self._synced = asyncio.Event()
        self._scheduled = False
        self._writer: StatusWriter | None = None

    @property
    def policies(self) -> PolicySet:
        return self._policies

    @property
    def watchers(self) -> tuple[ListWatcher, ...]:
        return tuple(self._watchers)

    async def start(self) -> PolicySet:
        """Start watching; return the policy set once every type has been listed (waits while the API is down)."""
        self._loop = asyncio.get_running_loop()
        self._api = api_client(self._options.client, self._environ)
        custom = client.CustomObjectsApi(self._api)
        core = client.CoreV1Api(self._api)
        settings = self._options.watch
        self._writer = StatusWriter(
            functools.partial(_patch_status, custom),
            initial_backoff=settings.initial_backoff_seconds,
            max_backoff=settings.max_backoff_seconds,
        )
        self._writer.start()
        for kind in Kind:
            # The cluster-wide path lists a namespaced kind across all namespaces.
            list_function = functools.partial(custom.list_cluster_custom_object, GROUP, VERSION, kind.plural)
            self._add_watcher(
                kind.value,
                list_function,
                functools.partial(self._reconciler.replace_resources, kind),
                functools.partial(self._resource_event, kind),
                settings,
            )
        self._add_watcher(
            SECRETS,
            core.list_secret_for_all_namespaces,
            self._reconciler.replace_secrets,
            self._reconciler.secret_event,
            settings,
            label_selector=CREDENTIALS_LABEL_SELECTOR,
        )
        _log.info("watching %s at %s", ", ".join(self._unsynced), describe(self._api))
        for watcher in self._watchers:
            watcher.start()
        await self._synced.wait()
        self._reconcile(initial=True)
        return self._policies

    async def stop(self) -> None:
        for watcher in self._watchers:
            watcher.stop()
        await asyncio.gather(*(asyncio.to_thread(watcher.join, STOP_SECONDS) for watcher in self._watchers))
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop, STOP_SECONDS)
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]

    # -- from the watch threads (through the loop) ---------------------------------------------------------------

    def _add_watcher(
        self,
        name: str,
        list_function: Callable[..., Any],
        apply_list: Callable[[list[Item]], None],
        apply_event: Callable[[str, Item], None],
        settings: WatchSettings,
        *,
        label_selector: str | None = None,
    ) -> None:
        def on_list(items: list[Item]) -> None:
            def apply() -> None:
                apply_list(items)
                self._unsynced.discard(name)

            self._hand_over(apply)

        def on_event(event_type: str, item: Item) -> None:
            self._hand_over(lambda: apply_event(event_type, item))

        self._unsynced.add(name)
        self._watchers.append(
            ListWatcher(name, list_function, on_list, on_event, settings, label_selector=label_selector)
        )

    def _hand_over(self, change: Callable[[], object]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._apply, change)

    def _apply(self, change: Callable[[], object]) -> None:
        change()
        if self._unsynced:
            return
        if not self._synced.is_set():
            self._synced.set()  # start() does the first reconcile
            return
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._reconcile)

    def _resource_event(self, kind: Kind, event_type: str, item: Item) -> None:
        self._reconciler.resource_event(kind, event_type, item)
        if event_type == "DELETED" and self._writer is not None:
            self._writer.forget(resource_ref(kind, item))

    def _reconcile(self, initial: bool = False) -> None:
        self._scheduled = False
        outcome = self._reconciler.outcome()
        for desired in outcome.statuses:
            resource = self._reconciler.resource(desired.ref)
            if resource is None or self._writer is None:
                continue
            if not desired.accepted:
                _log.warning("%s is invalid: %s", desired.ref, desired.message)
            self._writer.submit(desired, resource)
        if outcome.policies == self._policies and not initial:
            return
        self._policies = outcome.policies
        if not initial:
            self._on_policies(outcome.policies)


def _patch_status(api: client.CustomObjectsApi, ref: ResourceRef, body: dict[str, Any]) -> None:
    """JSON merge patch on the status subresource (`conditions` is replaced whole: the server owns it)."""
    content_type = "application/merge-patch+json"
    if ref.kind.namespaced:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, ref.namespace, ref.kind.plural, ref.name, body, _content_type=content_type
        )
    else:
        api.patch_cluster_custom_object_status(
            GROUP, VERSION, ref.kind.plural, ref.name, body, _content_type=content_type
        )
