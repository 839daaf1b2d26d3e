"""cffi (ABI mode) bindings to the system libbpf (``libbpf.so.1``, Debian package ``libbpf1``).

Only the functions the loader uses are declared.  Nothing here keeps state: the opened
library is returned by :func:`open_libbpf` and owned by the caller.
"""

from __future__ import annotations

import ctypes.util
import os
from dataclasses import dataclass

import cffi

LIBBPF_CDEF = """
struct bpf_object;
struct bpf_program;
struct bpf_map;
struct bpf_link;
struct ring_buffer;

enum libbpf_print_level { LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG };

typedef int (*libbpf_print_fn_t)(enum libbpf_print_level level, const char *, void *ap);
libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn);
int vsnprintf(char *str, size_t size, const char *format, void *ap);

struct bpf_object *bpf_object__open_file(const char *path, const void *opts);
int bpf_object__load(struct bpf_object *obj);
void bpf_object__close(struct bpf_object *obj);
struct bpf_program *bpf_object__next_program(const struct bpf_object *obj, struct bpf_program *prog);
struct bpf_map *bpf_object__find_map_by_name(const struct bpf_object *obj, const char *name);
struct bpf_map *bpf_object__next_map(const struct bpf_object *obj, const struct bpf_map *map);
const char *bpf_map__name(const struct bpf_map *map);
struct bpf_program *bpf_object__find_program_by_name(const struct bpf_object *obj, const char *name);

const char *bpf_program__name(const struct bpf_program *prog);
const char *bpf_program__section_name(const struct bpf_program *prog);
int bpf_program__fd(const struct bpf_program *prog);
int bpf_program__set_autoload(struct bpf_program *prog, bool autoload);
bool bpf_program__autoload(const struct bpf_program *prog);
struct bpf_link *bpf_program__attach(const struct bpf_program *prog);

/* libbpf >= 1.0 layout; later versions append fields and accept the smaller size. */
struct bpf_uprobe_opts {
    size_t sz;
    size_t ref_ctr_offset;
    uint64_t bpf_cookie;
    bool retprobe;
    const char *func_name;
};
struct bpf_link *bpf_program__attach_uprobe_opts(const struct bpf_program *prog, int pid,
        const char *binary_path, size_t func_offset, const struct bpf_uprobe_opts *opts);
int bpf_link__destroy(struct bpf_link *link);
struct bpf_link *bpf_program__attach_perf_event(const struct bpf_program *prog, int pfd);

int bpf_map__fd(const struct bpf_map *map);
int bpf_map__reuse_fd(struct bpf_map *map, int fd);
int bpf_map__set_max_entries(struct bpf_map *map, uint32_t max_entries);
uint32_t bpf_map__max_entries(const struct bpf_map *map);
void *bpf_map__initial_value(struct bpf_map *map, size_t *psize);
int bpf_map__set_initial_value(struct bpf_map *map, const void *data, size_t size);

int bpf_map_lookup_elem(int fd, const void *key, void *value);
int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags);
int bpf_map_delete_elem(int fd, const void *key);
int bpf_map_get_next_key(int fd, const void *key, void *next_key);
int bpf_map_lookup_and_delete_elem(int fd, const void *key, void *value);

typedef int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size);
struct ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn sample_cb, void *ctx, const void *opts);
void ring_buffer__free(struct ring_buffer *rb);
int ring_buffer__poll(struct ring_buffer *rb, int timeout_ms);
int ring_buffer__consume(struct ring_buffer *rb);
int ring_buffer__epoll_fd(const struct ring_buffer *rb);

int libbpf_num_possible_cpus(void);
long libbpf_get_error(const void *ptr);
int libbpf_strerror(int err, char *buf, size_t size);
"""

LIBBPF_SONAME = "libbpf.so.1"


@dataclass(frozen=True)
class Libbpf:
    """The loaded library: ``ffi`` for types and buffers, ``lib`` for calls."""

    ffi: cffi.FFI
    lib: object
    path: str


def open_libbpf(path: str | None = None) -> Libbpf:
    """Open the system libbpf.  Raises OSError naming the package to install when missing."""
    ffi = cffi.FFI()
    ffi.cdef(LIBBPF_CDEF)
    candidates = [path] if path else [LIBBPF_SONAME, ctypes.util.find_library("bpf") or ""]
    last: OSError | None = None
    for name in candidates:
        if not name:
            continue
        try:
            lib = ffi.dlopen(name)
        except OSError as err:  # try the next candidate, report the last failure
            last = err
            continue
        return Libbpf(ffi=ffi, lib=lib, path=name)
    raise OSError(
        f"cannot load {LIBBPF_SONAME} ({last}); install the system libbpf "
        "(Debian/Ubuntu: apt-get install libbpf1)"
    )


def errno_text(lb: Libbpf, err: int) -> str:
    """Human text for a negative libbpf error code."""
    err = abs(err)
    buf = lb.ffi.new("char[]", 256)
    lb.lib.libbpf_strerror(err, buf, 256)
    text = lb.ffi.string(buf).decode(errors="replace")
    return f"{text} (errno {err}: {os.strerror(err) if err < 4096 else 'libbpf'})"
