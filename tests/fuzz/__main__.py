"""``make fuzz``: coverage-guided fuzzing (atheris + libFuzzer) of every target in
:mod:`tests.fuzz.targets`, one process per target.

    python -m tests.fuzz [--runs N] [--seconds S] [--targets a,b] [--jobs J]

Each target starts from a corpus seeded with the recorded fixtures, the adversarial corpus and
every saved crash (``.fuzz/corpus/<target>``, kept between runs, not in git).  libFuzzer stops a
target after ``--runs`` inputs or ``--seconds``, whichever comes first; an input that raises,
runs past 10 s or grows the process past 2 GiB is a crash: it is minimised (``-minimize_crash``)
and saved as ``tests/fixtures/<folder>/fuzz/<kind>-<sha1>.bin``, which
tests/unit/test_fuzz_regressions.py replays in ``make test``.  The summary prints, per
target, the inputs executed (libFuzzer's ``number_of_executed_units``) and the crashes saved.

``python -m tests.fuzz.worker <target> <libFuzzer args>`` is the per-target process.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.targets import TARGETS
from tests.support.adversarial import CASES
from tests.support.hostile_input import FIXTURES, SESSIONS, fixture_seeds

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".fuzz"
FOLDERS = {**{proto: ("dns" if proto.startswith("dns") else proto) for proto in SESSIONS},
           "records": "records", "config": "config", "otlp": "otlp", "prometheus": "prometheus"}
MAX_LEN = 4096  # large inputs: the adversarial corpus and the linearity tests; small ones mutate fast


def crash_dir(target: str) -> Path:
    return FIXTURES / FOLDERS[target] / "fuzz"


def saved_crashes(target: str) -> list[Path]:
    """The regression inputs of ``target`` (a folder shared by dns and dns_udp: prefixed by target)."""
    folder = crash_dir(target)
    return sorted(folder.glob(f"{target}-*.bin")) if folder.is_dir() else []


def seed_corpus(target: str) -> Path:
    corpus = WORK / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    seeds: list[bytes] = []
    if target in SESSIONS:
        seeds += fixture_seeds(target)
        seeds += [case.script() for case in CASES if case.proto == target]
    elif target == "config":
        seeds += [p.read_bytes() for p in sorted((REPO / "config").glob("*.yaml"))]
    elif target == "records":
        from tests.fuzz.seeds import record_seeds

        seeds += record_seeds()
    else:
        seeds += [bytes(range(256)), b"\x01" * 512]
    seeds += [p.read_bytes() for p in saved_crashes(target)]
    for seed in seeds:
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed[:MAX_LEN])
    return corpus


def fuzz_one(target: str, runs: int, seconds: int) -> dict:
    corpus = seed_corpus(target)
    artifacts = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    args = [
        sys.executable, "-m", "tests.fuzz.worker", target, str(corpus),
        f"-runs={runs}", f"-max_total_time={seconds}", f"-max_len={MAX_LEN}", "-timeout=10",
        "-rss_limit_mb=2048", f"-artifact_prefix={artifacts}/", "-print_final_stats=1", "-close_fd_mask=3",
    ]
    started = time.monotonic()
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    log = done.stdout + done.stderr
    executed = sum(int(n) for n in re.findall(r"stat::number_of_executed_units:\s*(\d+)", log))
    saved = [_save(target, artifact) for artifact in sorted(artifacts.iterdir())]
    shutil.rmtree(artifacts, ignore_errors=True)
    return {"target": target, "executed": executed, "seconds": round(time.monotonic() - started, 1),
            "saved": saved, "exit": done.returncode, "tail": log[-2000:] if done.returncode and not saved else ""}


def _save(target: str, artifact: Path) -> str:
    """Minimise a crash (libFuzzer ``-minimize_crash``) and keep it as a regression fixture."""
    kind = artifact.name.split("-", 1)[0]  # crash, timeout, oom, leak
    minimised = artifact.with_suffix(".min")
    subprocess.run(
        [sys.executable, "-m", "tests.fuzz.worker", target, "-minimize_crash=1", "-runs=20000",
         f"-exact_artifact_path={minimised}", "-timeout=10", str(artifact)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    data = (minimised if minimised.exists() else artifact).read_bytes()
    folder = crash_dir(target)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{target}-{kind}-{hashlib.sha1(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return str(path.relative_to(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("FUZZ_RUNS", 1_000_000)),
                        help="inputs per target (default 1,000,000, or $FUZZ_RUNS)")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", 3600)),
                        help="time limit per target (default 3600, or $FUZZ_SECONDS)")
    parser.add_argument("--targets", default=os.environ.get("FUZZ_TARGETS", ",".join(TARGETS)))
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    results = []
    print(f"{'target':<12} {'inputs':>12} {'seconds':>8}  crashes saved")
    for target in targets:
        result = fuzz_one(target, args.runs, args.seconds)
        results.append(result)
        print(f"{target:<12} {result['executed']:>12,} {result['seconds']:>8}  {', '.join(result['saved']) or '-'}",
              flush=True)
        if result["tail"]:
            print(result["tail"], file=sys.stderr)
    total = sum(r["executed"] for r in results)
    crashed = [p for r in results for p in r["saved"]]
    print(f"total: {total:,} inputs over {len(results)} targets; {len(crashed)} crash(es) saved")
    return 1 if crashed or any(r["tail"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
