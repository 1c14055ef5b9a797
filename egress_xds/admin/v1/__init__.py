"""Generated from protos/egress_xds/admin/v1/admin.proto by scripts/generate-protos.sh; do not edit."""
