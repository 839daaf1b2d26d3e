"""Seeds for the record decoder: one well-formed record of each kind the ABI defines, built
from the ABI's own struct layouts (``bpf/src/abi/events.h``), so mutations start from records
the decoder accepts."""

from __future__ import annotations

import struct

from receiver.bpf.abi import load_abi


def record_seeds() -> list[bytes]:
    abi = load_abi()
    seeds = []
    data_fmt, names = abi.struct_format("erx_data_event", stop_at="payload")
    values = {name: 0 for name in names}
    payload = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    for kind_name in ("ERX_EV_DATA",):
        values.update({"hdr.kind": abi.const(kind_name), "tuple.family": 2, "tuple.transport": 1,
                       "captured_len": len(payload), "total_len": len(payload), "hdr.pid": 1, "hdr.tid": 1})
        seeds.append(data_fmt.pack(*(values.get(n, 0) if not n.endswith(("saddr", "daddr")) else b"\0" * 16
                                     for n in names)) + payload)
    for struct_name in ("erx_conn_event", "erx_proc_event"):
        try:
            fmt, field_names = abi.struct_format(struct_name)
        except (KeyError, ValueError):
            continue
        raw = bytearray(fmt.size)
        seeds.append(bytes(raw))
    seeds.append(struct.pack("<B", 255) + b"\0" * 64)
    return seeds
