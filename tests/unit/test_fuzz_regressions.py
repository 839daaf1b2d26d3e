"""Every input the fuzz campaign (``make fuzz``, tests/fuzz) ever saved as a crash —
``tests/fixtures/<folder>/fuzz/<target>-<kind>-<sha1>.bin``, minimised — replays without
raising; and every target runs over its seeds (recorded fixtures, adversarial corpus), so the
harness ``make fuzz`` drives is itself tested here."""

from __future__ import annotations

import pytest

from tests.fuzz.__main__ import FOLDERS, saved_crashes
from tests.fuzz.seeds import record_seeds
from tests.fuzz.targets import TARGETS
from tests.support.adversarial import CASES
from tests.support.hostile_input import SESSIONS, fixture_seeds

def test_every_saved_crash_no_longer_crashes():
    saved = [(target, path) for target in TARGETS for path in saved_crashes(target)]
    for target, path in saved:
        TARGETS[target](path.read_bytes())
    assert all(path.stat().st_size <= 1 << 16 for _, path in saved)  # minimised, or at most max_len


def seeds(target: str) -> list[bytes]:
    if target in SESSIONS:
        return fixture_seeds(target) + [c.script() for c in CASES if c.proto == target]
    if target == "records":
        return record_seeds()
    return [b"", bytes(range(256)), b"\xff" * 300]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_target_runs_over_its_seeds(target):
    assert FOLDERS[target]  # every target has a folder for its crashes
    for seed in seeds(target):
        TARGETS[target](seed)
