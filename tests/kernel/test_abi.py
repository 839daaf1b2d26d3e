"""The ABI as user space reads it (cffi over bpf/src/abi/events.h) against the ABI as it was
compiled (the BTF of receiver.bpf.o, dumped by bpftool).  Fails when the header changed
without a rebuild, or the object was rebuilt from another header."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from receiver.bpf.abi import STRUCTS, Abi, abi_source, header_path, load_abi
from receiver.bpf.loader import default_object_path
from receiver.bpf.profile_loader import PROFILE_OBJECT, PROFILE_STRUCTS

from .harness import BPFTOOL

pytestmark = pytest.mark.kernel

MODIFIERS = ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG")


class Btf:
    """The types of one BTF blob, from `bpftool btf dump file <obj> -j`."""

    def __init__(self, types: list[dict]) -> None:
        self.by_id = {t["id"]: t for t in types}

    @classmethod
    def of_object(cls, path) -> "Btf":
        res = subprocess.run([BPFTOOL, "btf", "dump", "file", str(path), "-j"], capture_output=True, text=True, check=True)
        return cls(json.loads(res.stdout)["types"])

    def resolve(self, type_id: int) -> dict:
        t = self.by_id[type_id]
        while t["kind"] in MODIFIERS:
            t = self.by_id[t["type_id"]]
        return t

    def size(self, t: dict) -> int:
        if t["kind"] == "ARRAY":
            return t["nr_elems"] * self.size(self.resolve(t["type_id"]))
        if t["kind"] == "PTR":
            return 8
        return t["size"]

    def named(self, kind: str, name: str) -> dict:
        """The one definition of a named struct/enum (clang dedups within an object)."""
        found = [t for t in self.by_id.values() if t["kind"] == kind and t.get("name") == name]
        assert found, f"{kind} {name} is not in the object's BTF (not compiled in, or not anchored)"
        assert len(found) == 1, f"{len(found)} definitions of {kind} {name}"
        return found[0]


@pytest.fixture(scope="module")
def btf(kernel) -> Btf:
    return Btf.of_object(default_object_path())


@pytest.fixture(scope="module")
def profile_btf(kernel) -> Btf:
    """The profiler's own object (profile.bpf.c): its ABI types are checked against it."""
    return Btf.of_object(default_object_path(PROFILE_OBJECT))


@pytest.fixture(scope="module")
def abi() -> Abi:
    return load_abi()


def _compare_struct(btf: Btf, abi: Abi, name: str) -> list[str]:
    """Differences between the cffi and the BTF layout of struct name (recursing into members)."""
    diffs: list[str] = []
    b = btf.named("STRUCT", name)
    ctype = abi.ffi.typeof(f"struct {name}")
    if b["size"] != abi.sizeof(name):
        diffs.append(f"sizeof(struct {name}): header {abi.sizeof(name)}, object {b['size']}")
    cfields = [(fname, f) for fname, f in ctype.fields]
    bnames = [m["name"] for m in b["members"]]
    if [n for n, _ in cfields] != bnames:
        return diffs + [f"struct {name} members: header {[n for n, _ in cfields]}, object {bnames}"]
    for (fname, f), m in zip(cfields, b["members"]):
        where = f"{name}.{fname}"
        if m["bits_offset"] % 8 or m["bits_offset"] // 8 != f.offset:
            diffs.append(f"offsetof({where}): header {f.offset}, object {m['bits_offset'] / 8}")
        mt = btf.resolve(m["type_id"])
        if btf.size(mt) != abi.ffi.sizeof(f.type):
            diffs.append(f"sizeof({where}): header {abi.ffi.sizeof(f.type)}, object {btf.size(mt)}")
        t = f.type
        if t.kind == "struct":
            inner = t.cname.split()[-1]
            if mt["kind"] != "STRUCT" or mt.get("name") != inner:
                diffs.append(f"{where}: header struct {inner}, object {mt['kind']} {mt.get('name')}")
        elif t.kind == "array":
            elem = btf.resolve(mt["type_id"]) if mt["kind"] == "ARRAY" else None
            if elem is None or mt["nr_elems"] != t.length or btf.size(elem) != abi.ffi.sizeof(t.item):
                diffs.append(f"{where}: header {t.item.cname}[{t.length}], object {mt}")
        else:
            signed = not t.cname.startswith("u")
            if mt["kind"] != "INT" or (mt["encoding"] == "SIGNED") != signed:
                diffs.append(f"{where}: header {t.cname}, object {mt['kind']} {mt.get('encoding')}")
    return diffs


@pytest.mark.parametrize("name", STRUCTS)
def test_struct_layout_matches_compiled_object(btf: Btf, abi: Abi, name: str) -> None:
    assert _compare_struct(btf, abi, name) == []


@pytest.mark.parametrize("name", PROFILE_STRUCTS)
def test_profile_struct_layout_matches_profile_object(profile_btf: Btf, abi: Abi, name: str) -> None:
    assert _compare_struct(profile_btf, abi, name) == []


def test_profile_enum_matches_profile_object(profile_btf: Btf, abi: Abi) -> None:
    compiled = {v["name"]: v["val"] for v in profile_btf.named("ENUM", "erx_prof_counter")["values"]}
    assert dict(abi.ffi.typeof("enum erx_prof_counter").relements) == compiled


def test_serving_state_identical_in_both_objects(btf: Btf, profile_btf: Btf) -> None:
    """The profiler reuses the receiver's erx_serving_state by fd: same value layout."""

    def layout(b: Btf) -> list[tuple[str, int, int]]:
        t = b.named("STRUCT", "erx_serving")
        return [(m["name"], m["bits_offset"], b.size(b.resolve(m["type_id"]))) for m in t["members"]] + [("", 0, t["size"])]

    assert layout(btf) == layout(profile_btf)


def _header_enums() -> list[str]:
    """The enums of receiver.bpf.o (the profiler's, erx_prof_*, live in profile.bpf.o)."""
    found = re.findall(r"\benum\s+(\w+)\s*\{", abi_source(header_path().read_text()))
    return [n for n in found if not n.startswith("erx_prof_")]


def test_header_declares_the_enums_user_space_uses() -> None:
    assert {"erx_event_kind", "erx_direction", "erx_role", "erx_syscall", "erx_transport", "erx_counter",
            "erx_http_method", "erx_http_flag", "erx_shed_level"} <= set(_header_enums())


@pytest.mark.parametrize("name", _header_enums())
def test_enum_values_match_compiled_object(btf: Btf, abi: Abi, name: str) -> None:
    compiled = {v["name"]: v["val"] for v in btf.named("ENUM", name)["values"]}
    assert dict(abi.ffi.typeof(f"enum {name}").relements) == compiled


def test_array_bounds_match_constants(btf: Btf, abi: Abi) -> None:
    """#defines are not in BTF; the arrays and map sizes they shape are."""

    def member(struct: str, field: str) -> dict:
        m = next(m for m in btf.named("STRUCT", struct)["members"] if m["name"] == field)
        return btf.resolve(m["type_id"])

    assert member("erx_data_event", "payload")["nr_elems"] == abi.const("ERX_MAX_CAPTURE")
    assert member("erx_proc_event", "comm")["nr_elems"] == abi.const("ERX_COMM_LEN")
    maps = btf.named("DATASEC", ".maps")
    counters = next(btf.by_id[v["type_id"]] for v in maps["vars"] if btf.by_id[v["type_id"]]["name"] == "erx_counters")
    mdef = btf.resolve(counters["type_id"])
    max_entries = next(m for m in mdef["members"] if m["name"] == "max_entries")
    assert btf.resolve(btf.resolve(max_entries["type_id"])["type_id"])["nr_elems"] == abi.const("ERX_CNT_MAX")


def test_http_record_bounds(btf: Btf, abi: Abi) -> None:
    """The strings area of an ERX_EV_HTTP_TX record holds every string at its bound; the
    interim codes array is ERX_HTTP_MAX_INTERIM long; the aggregates' buckets are the RED
    metrics' (http.server.request.duration) bounds, in ns, plus the overflow bucket."""
    from receiver.telemetry.red_metrics import DURATION_BUCKETS

    c = abi.const
    strings = ("METHOD", "TARGET", "HOST", "USER_AGENT", "TRACEPARENT", "TRACESTATE")
    assert sum(c(f"ERX_HTTP_{n}_MAX") for n in strings) == c("ERX_HTTP_STRINGS_MAX")

    def member(struct: str, field: str) -> dict:
        m = next(m for m in btf.named("STRUCT", struct)["members"] if m["name"] == field)
        return btf.resolve(m["type_id"])

    assert member("erx_http_tx_event", "strings")["nr_elems"] == c("ERX_HTTP_STRINGS_MAX")
    assert member("erx_http_tx_event", "interim")["nr_elems"] == c("ERX_HTTP_MAX_INTERIM")
    assert member("erx_http_agg_value", "buckets")["nr_elems"] == c("ERX_HTTP_BUCKETS") == len(DURATION_BUCKETS) + 1
    bounds = [c(f"ERX_HTTP_BOUND_{i}_NS") for i in range(c("ERX_HTTP_BUCKETS") - 1)]
    assert bounds == [round(b * 1e9) for b in DURATION_BUCKETS]
    # the record's strings start where the fixed part ends (the size user space cuts at)
    assert abi.offsetof("erx_http_tx_event", "strings") + c("ERX_HTTP_STRINGS_MAX") == abi.sizeof("erx_http_tx_event")


def test_rodata_holds_exactly_the_config(btf: Btf, abi: Abi) -> None:
    """The loader writes one struct erx_config at offset 0 of .rodata and nothing else."""
    rodata = btf.named("DATASEC", ".rodata")
    assert len(rodata["vars"]) == 1
    (v,) = rodata["vars"]
    var = btf.by_id[v["type_id"]]
    assert (var["name"], v["offset"], v["size"]) == ("erx_cfg", 0, abi.sizeof("erx_config"))
    assert btf.resolve(var["type_id"])["name"] == "erx_config"
