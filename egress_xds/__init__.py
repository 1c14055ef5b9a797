"""egress-xds: an xDS control plane that makes Envoy tunnel outbound traffic through a corporate HTTP proxy."""

__version__ = "0.1.0"
