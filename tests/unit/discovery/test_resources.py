"""Per-process resources over fake /proc trees: Kubernetes attributes only on Kubernetes
evidence, service names of interpreters and shells, and a service instance that does not
multiply with short-lived processes."""

from __future__ import annotations

import pytest

from discovery_support import FakeClock, FakeProc, FakeProcess
from receiver.discovery.resources import ProcessResources, metrics_view, service_instance_id
from receiver.discovery.service_name import derive_service_name
from receiver.model.telemetry import Resource

HOST_CGROUP = "0::/user.slice/user-0.slice/session-1.scope\n"
CONTAINER = "c" * 64
POD_UID = "1f0e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
KUBEPODS_SYSTEMD = (
    f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_UID.replace('-', '_')}.slice/"
    f"cri-containerd-{CONTAINER}.scope\n"
)
KUBEPODS_CGROUPFS = f"12:memory:/kubepods/besteffort/pod{POD_UID}/{CONTAINER}\n0::/\n"
DOWNWARD_API = (("POD_NAME", "web-7d9f-x2"), ("POD_NAMESPACE", "shop"), ("CONTAINER_NAME", "web"))


@pytest.fixture
def fake(tmp_path) -> FakeProc:
    return FakeProc(tmp_path)


def resources(fake: FakeProc, clock=None) -> ProcessResources:
    return ProcessResources(str(fake.root), host_name="vm", clock=clock or FakeClock())


def k8s(resource: Resource) -> dict:
    return {k: v for k, v in resource.attributes if k.startswith("k8s.")}


# -- Kubernetes attributes need Kubernetes evidence ----------------------------------------------


def test_a_generic_container_name_on_a_host_gives_no_k8s_attributes(fake):
    # What a sandbox or CI runner sets: CONTAINER_NAME, even POD_NAME, but no Kubernetes.
    fake.add(FakeProcess(10, exe="/usr/bin/curl", argv=("curl", "http://x/"), cgroup=HOST_CGROUP,
                         environ=(("CONTAINER_NAME", "uid-cdhknn"), ("POD_NAME", "not-a-pod"))))
    assert k8s(resources(fake).get(10)) == {}


def test_the_kubernetes_service_variable_is_evidence(fake):
    fake.add(FakeProcess(11, cgroup=HOST_CGROUP, environ=(("KUBERNETES_SERVICE_HOST", "10.96.0.1"), *DOWNWARD_API)))
    assert k8s(resources(fake).get(11)) == {
        "k8s.pod.name": "web-7d9f-x2", "k8s.namespace.name": "shop", "k8s.container.name": "web",
    }


@pytest.mark.parametrize("cgroup", [KUBEPODS_SYSTEMD, KUBEPODS_CGROUPFS], ids=["systemd-driver", "cgroupfs-driver"])
def test_a_kubepods_cgroup_is_evidence_and_names_the_pod_uid(fake, cgroup):
    fake.add(FakeProcess(12, cgroup=cgroup, environ=DOWNWARD_API))
    r = resources(fake).get(12)
    assert k8s(r) == {"k8s.pod.name": "web-7d9f-x2", "k8s.namespace.name": "shop", "k8s.container.name": "web",
                      "k8s.pod.uid": POD_UID}
    assert r.get("container.id") == CONTAINER


def test_the_service_account_mount_in_the_process_root_is_evidence(fake):
    fake.add(FakeProcess(13, cgroup=HOST_CGROUP, environ=DOWNWARD_API, root="pod"))
    (fake.base / "roots" / "pod" / "var/run/secrets/kubernetes.io/serviceaccount").mkdir(parents=True)
    fake.add(FakeProcess(14, cgroup=HOST_CGROUP, environ=DOWNWARD_API, root="host"))
    res = resources(fake)
    assert k8s(res.get(13))["k8s.pod.name"] == "web-7d9f-x2"
    assert k8s(res.get(14)) == {}  # same variables, no mount in its root


def test_k8s_pairs_the_process_states_itself_are_kept(fake):
    fake.add(FakeProcess(15, cgroup=HOST_CGROUP,
                         environ=(("OTEL_RESOURCE_ATTRIBUTES", "k8s.cluster.name=prod,k8s.pod.name=p"),)))
    assert k8s(resources(fake).get(15)) == {"k8s.cluster.name": "prod", "k8s.pod.name": "p"}


# -- service names of interpreters and shells ------------------------------------------------------


@pytest.mark.parametrize(
    "exe,argv,name",
    [
        ("/usr/bin/python3.11", ("python3", "app.py"), "app"),
        ("/usr/bin/python3.11", ("python3", "-u", "-X", "dev", "/srv/shop/main.py"), "main"),
        ("/usr/bin/python3.11", ("python3", "-Wignore", "-m", "mod"), "mod"),
        ("/usr/bin/python3.11", ("python", "-mhttp.server", "8000"), "http.server"),
        ("/usr/bin/python3.11", ("python3", "-c", "import urllib.request; ..."), "python3"),
        ("/usr/bin/python3.11", ("python3", "-uc", "print(1)"), "python3"),
        ("/usr/bin/python3.11", ("python3",), "python3"),
        ("/usr/bin/python3.11", ("python3", "-"), "python3"),
        ("/usr/bin/node", ("node", "server.js"), "server"),
        ("/usr/bin/node", ("node", "--require", "otel.js", "--inspect", "dist/server.mjs"), "server"),
        ("/usr/bin/node", ("node", "-e", "require('http')"), "node"),
        ("/usr/bin/bash", ("bash", "script.sh"), "script"),
        ("/usr/bin/bash", ("/bin/bash", "-euo", "pipefail", "/opt/jobs/backup.sh"), "backup"),
        ("/usr/bin/bash", ("bash", "/dev/fd/3"), "bash"),
        ("/usr/bin/bash", ("bash", "/proc/self/fd/63"), "bash"),
        ("/usr/bin/bash", ("bash", "-c", "curl -s http://127.0.0.1/"), "bash"),
        ("/usr/bin/bash", ("-bash",), "bash"),
        ("/usr/bin/dash", ("/bin/sh", "-c", "exec worker"), "sh"),
        ("/usr/bin/ruby3.1", ("ruby", "-I", "lib", "bin/puma.rb"), "puma"),
        ("/usr/bin/perl", ("perl", "-MJSON", "-e", "1"), "perl"),
        ("/usr/bin/php8.2", ("php", "-f", "index.php"), "index"),
        ("/usr/bin/php8.2", ("php", "-S", "0.0.0.0:8000"), "php"),
        ("/usr/lib/jvm/bin/java", ("java", "-Xmx1g", "-jar", "/opt/shop.jar"), "shop"),
        ("/usr/lib/jvm/bin/java", ("java", "-cp", "a.jar:b.jar", "com.shop.Main"), "Main"),
        ("/usr/sbin/nginx", ("nginx: worker process",), "nginx"),
        ("/usr/sbin/nginx", ("nginx: master process /usr/sbin/nginx -p /srv -e /srv/logs/error.log",), "nginx"),
        ("/usr/bin/curl", ("curl", "-s", "http://127.0.0.1:8000/"), "curl"),
    ],
)
def test_service_names_from_command_lines(exe, argv, name):
    assert derive_service_name(exe, argv) == name


def test_a_script_read_from_a_descriptor_is_named_after_its_interpreter_in_proc(fake):
    fake.add(FakeProcess(20, exe="/usr/bin/bash", argv=("bash", "/dev/fd/3")))
    assert resources(fake).get(20).service_name == "bash"


# -- one service instance, not one per process ----------------------------------------------------


def test_short_lived_processes_of_one_executable_share_one_metrics_resource(fake):
    """Ten curl runs: some read from /proc while they ran, the others gone before (known by the
    kernel's comm only).  Spans keep each pid; metrics see one service instance."""
    res = resources(fake)
    spans, metrics = [], []
    for i, pid in enumerate(range(300, 310)):
        if i % 2:
            fake.add(FakeProcess(pid, exe="/usr/bin/curl", argv=("curl", "-s", f"http://127.0.0.1/{i}"),
                                 cgroup=HOST_CGROUP))
        res.remember(pid, "curl", ppid=1)
        spans.append(res.get(pid))
        metrics.append(res.for_metrics(pid))
    assert {r.get("process.pid") for r in spans} == set(range(300, 310))
    assert len(set(metrics)) == 1
    (m,) = set(metrics)
    assert all(a is metrics[0] for a in metrics)  # interned: one object for the series' key
    assert m.service_name == "curl" and m.get("host.name") == "vm"
    assert not [k for k, _ in m.attributes if k.startswith("process.")]
    assert m.get("service.instance.id") == service_instance_id("vm", "", "", "curl", "curl")
    assert {r.get("service.instance.id") for r in spans} == {m.get("service.instance.id")}


def test_instances_differ_by_host_container_service_and_executable():
    base = service_instance_id("vm", "", "", "app", "python3.11")
    assert base == service_instance_id("vm", "", "", "app", "python3.11")
    others = {
        service_instance_id("vm2", "", "", "app", "python3.11"),
        service_instance_id("vm", CONTAINER, "", "app", "python3.11"),
        service_instance_id("vm", "", "shop", "app", "python3.11"),
        service_instance_id("vm", "", "", "worker", "python3.11"),
        service_instance_id("vm", "", "", "app", "node"),
    }
    assert base not in others and len(others) == 5
    # The executable is compared as the kernel's comm (15 bytes): /proc and comm agree.
    assert service_instance_id("vm", "", "", "x", "systemd-resolved") == service_instance_id("vm", "", "", "x",
                                                                                             "systemd-resolve")


def test_a_process_may_name_its_own_instance(fake):
    fake.add(FakeProcess(30, environ=(("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=blue-1"),)))
    assert resources(fake).for_metrics(30).get("service.instance.id") == "blue-1"


def test_a_process_gone_before_it_was_read_inherits_its_parents_container(fake):
    fake.add(FakeProcess(40, exe="/usr/bin/bash", argv=("bash", "run.sh"), cgroup=f"0::/docker/{CONTAINER}\n"))
    fake.add(FakeProcess(41, exe="/usr/bin/curl", argv=("curl", "http://x/"), cgroup=f"0::/docker/{CONTAINER}\n"))
    res = resources(fake)
    res.remember(41, "curl", ppid=40)
    res.remember(42, "curl", ppid=40)  # exited before anything read its /proc entry
    assert res.for_metrics(42) == res.for_metrics(41)
    assert res.get(42).get("container.id") == CONTAINER


def test_an_exited_process_keeps_its_resource_for_the_grace_period(fake):
    clock = FakeClock()
    fake.add(FakeProcess(50, exe="/usr/bin/python3", argv=("python3", "app.py")))
    res = ProcessResources(str(fake.root), host_name="vm", clock=clock, exited_grace=10.0)
    before = res.get(50)
    fake.remove(50)
    res.remember(50, "python3")
    res.exited(50)
    clock.now += 9.0
    assert res.get(50) is before  # spans assembled after the exit still name the app
    clock.now += 2.0
    assert res.get(50).service_name == "python3"  # then it is read again: gone, named by its comm


def test_exec_forgets_at_once(fake):
    fake.add(FakeProcess(60, exe="/usr/bin/bash", argv=("bash", "start.sh")))
    res = resources(fake)
    assert res.get(60).service_name == "start"
    fake.add(FakeProcess(60, exe="/usr/bin/python3", argv=("python3", "server.py")))
    res.forget(60)
    assert res.get(60).service_name == "server"


def test_metrics_view_keeps_the_runtime_and_drops_per_process_attributes():
    r = Resource.from_dict({"service.name": "a", "process.pid": 1, "process.executable.path": "/x",
                            "process.runtime.name": "cpython", "host.name": "vm"})
    assert dict(metrics_view(r).attributes) == {"service.name": "a", "process.runtime.name": "cpython",
                                               "host.name": "vm"}
    plain = Resource.from_dict({"service.name": "a"})
    assert metrics_view(plain) is plain
