"""The server's side in `egress-xds status`: where its policy comes from, what it serves, how the last reload
went (a failing one with every error). Pure functions from the admin API's answers (GetPolicy, GetReloadErrors)
to text.

```
server 127.0.0.1:18000: policy from /etc/egress/policy.yaml, 2 policies (corp, default)
  snapshot     corp/sidecar  cds 1a2b3c4d5e6f7a8b  lds 0c1d2e3f4a5b6c7d  (3 streams)
  reload error 10s ago (file change), still failing: 1 error(s); still serving the last good policy
    /etc/egress/policy.yaml:3: proxies.corp.url: port 99999 out of range (expected 1-65535)
```
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from egress_xds.admin.status_view import format_age
from egress_xds.admin.v1 import admin_pb2
from egress_xds.type_urls import ads_sort_key, short_name


def server_summary(
    address: str,
    policy: admin_pb2.GetPolicyResponse,
    reloads: admin_pb2.GetReloadErrorsResponse,
    server_time: Timestamp,
) -> str:
    now = server_time.ToNanoseconds() / 1e9
    names = ", ".join(summary.name for summary in policy.policies)
    lines = [f"server {address}: policy from {policy.source or '(none)'}, {len(policy.policies)} policies ({names})"]
    for snapshot in policy.snapshots:
        versions = "  ".join(
            f"{short_name(url)} {version}"
            for url, version in sorted(snapshot.versions.items(), key=lambda item: ads_sort_key(item[0]))
        )
        streams = f"{snapshot.streams} stream{'s' if snapshot.streams != 1 else ''}"
        lines.append(f"  snapshot     {snapshot.policy}/{snapshot.mode}  {versions}  ({streams})")
    if reloads.HasField("last_attempt") and reloads.last_attempt.ok:
        last = reloads.last_attempt
        lines.append(f"  last reload  ok, {_ago(last, now)}: {last.message}")
    if reloads.HasField("last_failure"):
        failure = reloads.last_failure
        if reloads.failing:
            lines.append(f"  reload error {_ago(failure, now)}, still failing: {failure.message}")
            lines += [f"    {issue.text}" for issue in failure.errors]
        else:
            # Its message was written while it failed ("...; still serving the last good policy"): say only what
            # was wrong, now that a later reload serves a new one.
            wrong = f"{len(failure.errors)} error(s)" if failure.errors else failure.message
            lines.append(f"  last error   {_ago(failure, now)}, fixed by a later reload: {wrong}")
    return "\n".join(lines) + "\n"


def _ago(attempt: admin_pb2.ReloadAttempt, now: float) -> str:
    return f"{format_age(now - attempt.time.ToNanoseconds() / 1e9)} ago ({attempt.trigger})"
