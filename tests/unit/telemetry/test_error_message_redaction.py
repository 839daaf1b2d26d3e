"""Server error messages quote the values they refuse: only names already exported stay."""

from __future__ import annotations

import pytest

from receiver.telemetry.sql import obfuscate, redact_error_message

SECRET = "s3cr3t-value"


@pytest.mark.parametrize(
    ("message", "query", "dialect", "extra", "expected"),
    [
        (f'invalid input syntax for type integer: "{SECRET}"', f"SELECT '{SECRET}'::int", "postgresql", (),
         'invalid input syntax for type integer: "?"'),
        ('relation "no_such_table" does not exist', "SELECT * FROM no_such_table", "postgresql", (),
         'relation "no_such_table" does not exist'),
        ("Table 'shop.no_such_table' doesn't exist", "SELECT * FROM no_such_table", "mysql", ("shop",),
         "Table 'shop.no_such_table' doesn't exist"),
        (f"Duplicate entry '{SECRET}' for key 'PRIMARY'", f"INSERT INTO t VALUES ('{SECRET}')", "mysql", (),
         "Duplicate entry '?' for key '?'"),
        (f"You have an error in your SQL syntax; check the manual for the right syntax to use near "
         f"''{SECRET}' FROM t' at line 1", f"SELEC '{SECRET}' FROM t", "mysql", (),
         "You have an error in your SQL syntax; check the manual for the right syntax to use near "
         "'? FROM t' at line 1"),
        (f'value "{SECRET}" with "quotes "" inside"', None, "postgresql", (), 'value "?" with "?"'),
    ],
)
def test_quoted_values_are_replaced_names_kept(message, query, dialect, extra, expected):
    known = obfuscate(query, dialect) if query else None
    assert redact_error_message(message, known, dialect, extra) == expected


def test_redis_errors_quoting_arguments():
    message = f"ERR unknown command '{SECRET}', with args beginning with: '{SECRET}' "
    assert SECRET not in redact_error_message(message, "GET")
    assert redact_error_message("WRONGTYPE Operation against a key holding the wrong kind of value", "GET") == (
        "WRONGTYPE Operation against a key holding the wrong kind of value")
