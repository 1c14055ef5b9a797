"""ADS fan-out benchmark as a package: run with ``python -m bench.fanout --help`` (from the repository root).

One job per module: `policy` (the policy and the versions it gives), `procfs` (what is read from /proc),
`messages` (what the coordinator and the client processes say to each other), `h2` (the light HTTP/2 client
transport), `envoy` (what a simulated Envoy sends in answer to what), `client` (a client process), `servers`
(egress-xds and the floor as processes, triggered as an operator would), `floor` (the floor server program),
`scenarios` (the measurements), `report` (the tables), `cli` (the command line).
"""
