"""Sidecar injection: the settings, the one pod mutation, and the walk over Kubernetes documents that applies it.

`egress-xds inject` (offline) and `egress-xds webhook` (admission) both call `mutation.inject_pod`; nothing else
builds the sidecar.
"""
