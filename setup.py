"""The agent's compiled modules (everything else is in pyproject.toml): the per-record steps the
profile showed to cost most in the interpreter, each a drop-in for Python code that stays (the
reference, and the fallback where the module is not built).

* ``receiver.capture._ringbuf``: the ring buffer drained without a Python call per record
  (against the system libbpf, as the loader);
* ``receiver.capture._http_record``: kernel-paired HTTP/1 records into ``HttpTxEvent``;
* ``receiver.exporters._span_wire``: spans into OTLP ``Span`` messages.

pip builds them with the package (``pip install -e``: in place).  They need a C compiler and
Python's headers (scripts/install-deps.sh installs them)."""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]

MODULES = {  # module -> the libraries it links
    "receiver.capture._ringbuf": ["bpf"],
    "receiver.capture._http_record": [],
    "receiver.exporters._span_wire": [],
}

setup(
    ext_modules=[
        Extension(name, [name.replace(".", "/") + ".c"], libraries=libraries, extra_compile_args=FLAGS)
        for name, libraries in MODULES.items()
    ]
)
