"""The one compiled module of the agent (everything else is in pyproject.toml).

``receiver.exporters._span_wire`` writes OTLP Span messages in C (see its source); pip builds it
with the package, ``pip install -e`` in place.  It needs a C compiler and Python's headers
(scripts/install-deps.sh installs them)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "receiver.exporters._span_wire",
            ["receiver/exporters/_span_wire.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
        )
    ]
)
