"""Sans-I/O protocol parsers; see :mod:`receiver.protocols.base` for the contract."""
