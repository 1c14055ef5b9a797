"""The Kubernetes source: EgressProxy / ClusterEgressProxy resources and their Secrets become a policy set.

Modules, one job each (only `client`, `watch`, `status_writer` and `source` import the `kubernetes` client, so the
CLI can use `pod_identity` without paying for that import):

- `api`: group, versions, kinds, the Secret label: the names the manifests in `deploy/` also use
- `pod_identity`: what a sidecar says about itself (namespace, pod, labels) as Envoy node metadata
- `credentials`: a Secret's keys -> the `Proxy-Authorization` value, without ever echoing a secret
- `convert`: one resource (+ Secrets) -> one `EgressPolicy`, or a `ConfigError` naming `spec.` fields
- `reconcile`: the resources held -> the ordered policy set (precedence) and the status each resource should show
- `conditions`: the `Accepted` condition, and whether a resource already shows it
- `watch`: list then watch one resource type in a thread (bookmarks, backoff, relist on 410 Gone)
- `status_writer`: PATCHes the status subresource from a thread
- `client`: in-cluster config or kubeconfig
- `source`: wires the above to the asyncio loop that publishes snapshots
- `layers`: Kubernetes policies ahead of the file's (or environment's) when `serve` combines them
"""
