"""`egress-xds demo`: the whole chain on loopback, with real parts, in one command.

A real forward proxy (proxy.py, with basic auth) stands in for the corporate proxy, a local HTTPS site for an
external service; `egress-xds serve` runs in this process and a real Envoy (standalone node) is bootstrapped
against it. Requests go through Envoy, the proxy's log shows the CONNECT lines, then the proxy is switched live
and Envoy follows. Every process started is stopped, also on Ctrl-C. Exit code 0 only if every step worked.
"""

from __future__ import annotations

import asyncio
import http.client
import secrets
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from egress_xds.demo.processes import Child, DemoError, free_port, start_envoy, start_proxy_py
from egress_xds.demo.site import GREETING, SITE_NAME, DemoSite
from egress_xds.policy.model import PolicySet
from egress_xds.policy.parse import parse_document
from egress_xds.policy.yaml_tree import load_document
from egress_xds.publish import PolicyPublisher
from egress_xds.translate.bootstrap import ads_bootstrap
from egress_xds.translate.envoy_admin import AdminTcp
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.server import AdsServer

DEMO_USER = "demo"
POLICY_TEMPLATE = """
proxies:
  corp: http://{user}:{password}@127.0.0.1:{proxy_port}
httpsProxy: corp
httpProxy: corp
standalone:
  listeners:
    - name: site
      listen: 127.0.0.1:{listener_port}
      target: {site}:{site_port}
  forwardProxy:
    listen: 127.0.0.1:{forward_port}
"""


class Demo:
    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.directory = Path(tempfile.mkdtemp(prefix="egress-xds-demo-"))
        self.password = secrets.token_urlsafe(12)
        self.ports = {name: free_port() for name in ("proxy", "proxy2", "site", "xds", "admin", "listener", "forward")}
        self.children: list[Child] = []
        self.site: DemoSite | None = None
        self.results: list[tuple[str, bool]] = []

    def policy_text(self, proxy_port: int, with_auth: bool) -> str:
        text = POLICY_TEMPLATE.format(
            user=DEMO_USER,
            password=self.password,
            proxy_port=proxy_port,
            listener_port=self.ports["listener"],
            site=SITE_NAME,
            site_port=self.ports["site"],
            forward_port=self.ports["forward"],
        )
        return text if with_auth else text.replace(f"{DEMO_USER}:{self.password}@", "")

    async def run(self) -> bool:
        loop_server = None
        try:
            self.step("starting the local HTTPS site (stands in for an external service)")
            self.site = DemoSite(self.directory, self.ports["site"])
            self.site.start()
            self.step("starting the corporate proxy: proxy.py with basic auth")
            corp = await asyncio.to_thread(
                start_proxy_py,
                "proxy.py",
                self.ports["proxy"],
                self.directory / "proxy.log",
                f"{DEMO_USER}:{self.password}",
            )
            self.children.append(corp)
            self.step("starting egress-xds serve (in this process)")
            cache = SnapshotCache(lambda node: None)
            publisher = PolicyPublisher(cache)
            publisher.publish(self.parse(self.policy_text(self.ports["proxy"], with_auth=True)))
            loop_server = AdsServer(cache, f"127.0.0.1:{self.ports['xds']}")
            await loop_server.start()
            self.step("starting Envoy, bootstrapped from `egress-xds bootstrap --mode standalone`")
            envoy = await asyncio.to_thread(self.start_envoy)
            self.children.append(envoy)

            await self.check("HTTPS through Envoy's explicit listener", self.through_listener, corp, "/listener")
            await self.check("HTTPS through Envoy's forward proxy (app holds no password)", self.through_forward, corp)

            self.step("starting a second proxy, then switching the policy to it, live")
            backup = await asyncio.to_thread(
                start_proxy_py, "proxy.py #2", self.ports["proxy2"], self.directory / "proxy2.log", None
            )
            self.children.append(backup)
            publisher.publish(self.parse(self.policy_text(self.ports["proxy2"], with_auth=False)))
            await self.check("Envoy follows the change to the second proxy", self.after_switch, backup)
        except DemoError as error:
            self.results.append((str(error).splitlines()[0], False))
            self.say(f"    FAILED: {error}")
        finally:
            if loop_server is not None:
                await loop_server.stop(grace=1.0)
            self.cleanup()
        return bool(self.results) and all(ok for _, ok in self.results)

    def parse(self, text: str) -> PolicySet:
        return parse_document(load_document(text, "demo policy"))

    def start_envoy(self) -> Child:
        bootstrap = ads_bootstrap(
            "demo",
            f"127.0.0.1:{self.ports['xds']}",
            admin=AdminTcp(f"127.0.0.1:{self.ports['admin']}"),
            node_metadata={"mode": "standalone"},
        )
        path = self.directory / "envoy.yaml"
        path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
        return start_envoy(path, self.directory / "envoy.log", self.ports["admin"])

    async def check(self, title: str, action: Callable[..., Any], proxy: Child, *args: Any) -> None:
        self.step(title)
        before = len(_connect_lines(proxy))
        body = await asyncio.to_thread(action, *args)
        ok = GREETING in body
        self.say(f"    the site answered: {body.strip()!r}")
        lines = await asyncio.to_thread(_wait_for_connect, proxy, before)
        for line in lines:
            self.say(f"    {proxy.name} logged: {line}")
        self.results.append((title, ok and bool(lines)))

    def through_listener(self, path: str) -> str:
        context = ssl.create_default_context(cafile=str(self.site.ca_pem)) if self.site else None
        connection = http.client.HTTPSConnection(SITE_NAME, self.ports["listener"], context=context, timeout=10)
        return _get(connection, path)

    def through_forward(self) -> str:
        context = ssl.create_default_context(cafile=str(self.site.ca_pem)) if self.site else None
        connection = http.client.HTTPSConnection("127.0.0.1", self.ports["forward"], context=context, timeout=10)
        connection.set_tunnel(SITE_NAME, self.ports["site"])
        return _get(connection, "/forward-proxy")

    def after_switch(self) -> str:
        deadline = time.monotonic() + 10
        while True:  # the first connections may still use the old listener while Envoy swaps it
            body = self.through_listener("/after-switch")
            backup = self.children[-1]
            if _connect_lines(backup) or time.monotonic() > deadline:
                return body
            time.sleep(0.2)

    def step(self, text: str) -> None:
        self.say(f"==> {text}")

    def cleanup(self) -> None:
        for child in reversed(self.children):
            child.stop()
        if self.site is not None:
            self.site.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _get(connection: http.client.HTTPSConnection, path: str) -> str:
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.read().decode(errors="replace")
    except OSError as error:
        raise DemoError(f"request {path} failed: {error}") from None
    finally:
        connection.close()


def _connect_lines(proxy: Child) -> list[str]:
    """proxy.py's access-log lines for CONNECT, from the client address on (`127.0.0.1:41150 - CONNECT ...`)."""
    return [line.split(" - ", 2)[-1] for line in proxy.log().splitlines() if " CONNECT " in line]


def _wait_for_connect(proxy: Child, before: int, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = _connect_lines(proxy)[before:]
        if lines:
            return lines
        time.sleep(0.2)
    return []


def run_demo(say: Callable[[str], None] = print) -> int:
    demo = Demo(say)
    try:
        ok = asyncio.run(demo.run())
    except KeyboardInterrupt:
        demo.cleanup()
        say("interrupted; every process the demo started is stopped")
        return 130
    say("")
    say("summary:")
    for title, passed in demo.results:
        say(f"  [{'ok' if passed else 'FAILED'}] {title}")
    return 0 if ok else 1
