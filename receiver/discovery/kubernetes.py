"""``k8s.*`` resource attributes, only for processes that Kubernetes runs.

A variable such as ``CONTAINER_NAME`` or ``POD_NAME`` means nothing by itself: container
engines, CI runners and sandboxes set them too.  The downward-API-style variables below become
``k8s.*`` attributes only when the process shows Kubernetes evidence:

* ``KUBERNETES_SERVICE_HOST`` in its environment (the kubelet sets it in every container);
* a ``kubepods`` cgroup (both cgroup drivers: ``/kubepods/burstable/pod<uid>/...`` and
  ``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/...``), which
  also gives ``k8s.pod.uid``;
* the service-account mount ``/var/run/secrets/kubernetes.io/serviceaccount`` in its root (looked
  for last, and only when there is a variable to read: it costs a ``stat`` through
  ``/proc/<pid>/root``).

``k8s.*`` pairs the process writes itself in ``OTEL_RESOURCE_ATTRIBUTES`` are its own statement
and are not filtered here.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

KUBERNETES_ENV = "KUBERNETES_SERVICE_HOST"
SERVICE_ACCOUNT_DIRS = ("/var/run/secrets/kubernetes.io/serviceaccount", "/run/secrets/kubernetes.io/serviceaccount")

# Resource attribute -> variables that carry it, first set wins (downward API conventions).
DOWNWARD_API_ENV: dict[str, tuple[str, ...]] = {
    "k8s.pod.name": ("K8S_POD_NAME", "POD_NAME", "OTEL_K8S_POD_NAME"),
    "k8s.namespace.name": ("K8S_NAMESPACE_NAME", "POD_NAMESPACE", "K8S_NAMESPACE", "OTEL_K8S_NAMESPACE"),
    "k8s.pod.uid": ("K8S_POD_UID", "POD_UID", "OTEL_K8S_POD_UID"),
    "k8s.container.name": ("K8S_CONTAINER_NAME", "CONTAINER_NAME", "OTEL_K8S_CONTAINER_NAME"),
    "k8s.node.name": ("K8S_NODE_NAME", "NODE_NAME", "OTEL_K8S_NODE_NAME"),
}
_KUBEPODS = re.compile(r"(^|/)kubepods([./-]|$)")
_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


def pod_uid_from_cgroup(cgroup_text: str) -> str | None:
    """The pod UID in a ``kubepods`` cgroup path (``_`` of the systemd driver turned into ``-``)."""
    for line in cgroup_text.splitlines():
        path = line.rpartition(":")[2]
        if _KUBEPODS.search(path):
            m = _POD_UID.search(path)
            if m:
                return m.group(1).replace("_", "-")
    return None


def in_kubepods_cgroup(cgroup_text: str) -> bool:
    return any(_KUBEPODS.search(line.rpartition(":")[2]) for line in cgroup_text.splitlines())


def kubernetes_attributes(
    environ: Mapping[str, str], cgroup_text: str, has_service_account: Callable[[], bool]
) -> dict[str, str]:
    """``k8s.*`` attributes of a process, empty without Kubernetes evidence (see the module)."""
    from_env: dict[str, str] = {}
    for key, names in DOWNWARD_API_ENV.items():
        for name in names:
            value = environ.get(name)
            if value:
                from_env[key] = value
                break
    kubepods = in_kubepods_cgroup(cgroup_text)
    if not kubepods and KUBERNETES_ENV not in environ and not (from_env and has_service_account()):
        return {}
    out = dict(from_env)
    uid = pod_uid_from_cgroup(cgroup_text) if kubepods else None
    if uid and "k8s.pod.uid" not in out:
        out["k8s.pod.uid"] = uid
    return out
