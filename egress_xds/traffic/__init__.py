"""What happened to each workload's egress traffic, from the access log Envoy streams back (`egress-xds traffic`).

- entry.py: an Envoy access-log entry (TCP or HTTP) as one `TrafficEvent`, without paths, queries or headers;
- outcome.py: what the proxy (or Envoy) said: ok, proxy-auth-required, proxy-forbidden, ...;
- store.py: counts per workload and destination within a fixed memory budget;
- service.py: the `envoy.service.accesslog.v3.AccessLogService` servicer on the xDS port.

The admin API's answer (GetTraffic) and the `traffic` command's table and suggested rules are in egress_xds/admin/.

Everything is in memory: kept while Envoys reconnect, gone when the server restarts.
"""
