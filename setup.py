"""The agent's compiled modules (everything else is in pyproject.toml): the two per-request steps
the profile showed to cost most in the interpreter, each a drop-in for Python code that stays as
the reference and the path for anything unusual.

* ``receiver.capture._http_record``: kernel-paired HTTP/1 records into ``HttpTxEvent``;
* ``receiver.exporters._span_wire``: spans into OTLP ``Span`` messages.

pip builds them with the package (``pip install -e``: in place).  They need a C compiler and
Python's headers (scripts/install-deps.sh installs them)."""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension(name, [name.replace(".", "/") + ".c"], extra_compile_args=FLAGS)
        for name in ("receiver.capture._http_record", "receiver.exporters._span_wire")
    ]
)
