"""LDS size and build time of the sidecar capture listener as the policy's NO_PROXY grows.

    python bench/listener_size.py [--sizes 10,100,1000,10000] [--repeat 3]

Each size N is a corporate NO_PROXY of N entries (nine domains to one CIDR) behind one deny rule, the shape that
used to make LDS grow with domains x CIDRs. Prints the serialized LDS bytes and the median translation time; the
ratio columns compare each size with the previous one (linear growth: about the ratio of N). No network, no
processes: the translator only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from egress_xds.policy.node import NodeMode
from egress_xds.sources.file import load_policy_file
from egress_xds.translate import translate


def policy_text(entries: int) -> str:
    cidrs = max(1, entries // 10)
    names = [f"d{index}.corp.example" for index in range(entries - cidrs)]
    networks = [f"10.{index // 256 % 256}.{index % 256}.0/24" for index in range(cidrs)]
    return (
        "httpProxy: http://10.255.0.1:3128\n"
        "httpsProxy: http://10.255.0.1:3128\n"
        "rules:\n"
        "  - {name: paste, domains: [paste.example], action: deny}\n"
        f"noProxy: [{', '.join(names + networks)}]\n"
    )


def measure(entries: int, repeat: int, directory: Path) -> tuple[int, float]:
    path = directory / f"policy-{entries}.yaml"
    path.write_text(policy_text(entries))
    policy = load_policy_file(path).policies[0]
    times = []
    size = 0
    for _ in range(repeat):
        start = time.perf_counter()
        resources = translate(policy, NodeMode.SIDECAR)
        times.append(time.perf_counter() - start)
        size = sum(len(listener.SerializeToString()) for listener in resources.listeners)
    return size, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'entries':>8} {'LDS KiB':>10} {'build ms':>9} {'x size':>7} {'x time':>7}")
    previous: tuple[int, float] | None = None
    with tempfile.TemporaryDirectory() as directory:
        for entries in (int(size) for size in args.sizes.split(",")):
            size, seconds = measure(entries, args.repeat, Path(directory))
            ratios = f"{size / previous[0]:7.1f} {seconds / previous[1]:7.1f}" if previous else f"{'':>7} {'':>7}"
            print(f"{entries:>8} {size / 1024:>10.1f} {seconds * 1000:>9.1f} {ratios}")
            previous = (size, seconds)


if __name__ == "__main__":
    main()
