"""The keys of a policy, written down once: what a policy file accepts at each level, and what a Kubernetes
resource's spec carries instead. The parser takes its key sets from here and the Kubernetes conversion its spec
keys; tests/unit/test_policy_keys.py checks both CRD schemas (deploy/crds/) against this table, so a key added
in one place and forgotten in another fails a test.
"""

from __future__ import annotations

# --- a policy file --------------------------------------------------------------------------------------------

POLICY_KEYS = frozenset(
    {"name", "nodes", "httpProxy", "httpsProxy", "noProxy", "proxies", "rules", "rawTcp", "standalone"}
)
TOP_LEVEL_KEYS = POLICY_KEYS | {"policies"}  # `policies:` (with shared `proxies:`) instead of one policy
SHARED_KEYS = frozenset({"proxies"})  # what may stand beside `policies:`
PROXY_KEYS = frozenset({"url", "endpoints", "credentialsFile", "caFile", "sni", "healthCheck"})
ENDPOINT_KEYS = frozenset({"url", "priority"})
HEALTH_CHECK_KEYS = frozenset({"interval", "timeout", "unhealthyThreshold", "healthyThreshold"})
RULE_KEYS = frozenset({"name", "domains", "cidrs", "ports", "action"})
ACTION_PROXY_KEYS = frozenset({"proxy"})  # `action: {proxy: NAME}`
SELECTOR_KEYS = frozenset({"id", "metadata", "serviceAccount"})  # serviceAccount: a glob
STANDALONE_KEYS = frozenset({"listeners", "forwardProxy"})
LISTENER_KEYS = frozenset({"name", "listen", "target", "action"})
FORWARD_PROXY_KEYS = frozenset({"listen"})

# --- an EgressProxy / ClusterEgressProxy spec -----------------------------------------------------------------
# The spec holds the file's policy keys except: `name` (the resource's name), `nodes` (`workloadSelector`) and
# `standalone` (sidecars only); credentials come from Secrets (`credentialsSecretRef`), never from server files
# (`credentialsFile`, `caFile`); a rule's action is a string with the proxy name beside it (`proxy`).

SELECTOR_KEY = "workloadSelector"
SERVICE_ACCOUNTS_KEY = "serviceAccounts"  # names of the pods' service accounts (verified with client certificates)
SECRET_REF_KEY = "credentialsSecretRef"
SERVER_FILE_KEYS = frozenset({"credentialsFile", "caFile"})
SPEC_POLICY_KEYS = POLICY_KEYS - {"name", "nodes", "standalone"}
SPEC_KEYS = SPEC_POLICY_KEYS | {SELECTOR_KEY, SERVICE_ACCOUNTS_KEY, SECRET_REF_KEY}
SPEC_PROXY_KEYS = (PROXY_KEYS - SERVER_FILE_KEYS) | {SECRET_REF_KEY}
SPEC_RULE_KEYS = RULE_KEYS | ACTION_PROXY_KEYS
