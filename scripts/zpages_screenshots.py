#!/usr/bin/env python3
"""Screenshots of the zPages for docs/images (``make docs``): the agent with the zpages extension,
real nginx → Python app → Redis + PostgreSQL with a failing endpoint (tests/support/zpages_demo.py),
traffic, then each page in headless Chromium.

Needs root (the agent loads its BPF programs) and the test packages (``make deps-test venv bpf``).
Discovery rules trace only the demo's processes, so other workloads of the host stay out of the
pictures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from selenium.webdriver.common.by import By  # noqa: E402

from tests.support.agent import AgentProcess  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.rotel import RotelCollector  # noqa: E402
from tests.support.zpages_demo import ZPAGES_CONFIG, DemoServices, chromium_driver  # noqa: E402

ONLY_THE_DEMO = """
    discovery:
      include:
        - {exe: "*nginx*"}
        - {exe: "*redis-server*"}
        - {exe: "*postgres*"}
        - {cmdline: "*shop.py*"}
        - {cmdline: "*zpages_screenshots*"}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "images"), help="where the PNG files go")
    ap.add_argument("--ok", type=int, default=120, help="requests to /app/ok")
    ap.add_argument("--fail", type=int, default=12, help="requests to /app/fail")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("zpages_screenshots: needs root (the agent loads BPF programs); docs/images left as they are",
              file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zpages-docs-") as tmp:
        tmp = Path(tmp)
        port = free_port()
        with RotelCollector(tmp, signals=("traces",)) as collector:
            config = ZPAGES_CONFIG.format(port=port, collector=collector.grpc_endpoint)
            config = config.replace("  ebpf: {}\n", "  ebpf:" + ONLY_THE_DEMO)
            with AgentProcess(tmp, config):
                with DemoServices(tmp) as demo:
                    for _ in range(3):  # a few seconds of traffic: rates over a window
                        demo.drive(args.ok // 3, args.fail // 3)
                        time.sleep(1)
                    base = f"http://127.0.0.1:{port}"
                    time.sleep(3)  # unpaired client spans become database edges after the graph's wait
                    browser = chromium_driver(1600, 900)
                    try:
                        for page in ("servicemap", "servicez", "tracez", "pipelinez"):
                            browser.get(f"{base}/debug/{page}")
                            time.sleep(0.5)
                            browser.save_screenshot(str(out / f"zpages-{page}.png"))
                        # the failing span, opened from tracez's error column
                        browser.get(f"{base}/debug/tracez")
                        links = [r.find_element(By.CSS_SELECTOR, "td.errors a").get_attribute("href")
                                 for r in browser.find_elements(By.CSS_SELECTOR, "#spans tr.span-name")
                                 if int(r.get_attribute("data-errors")) > 0]
                        for href in links:
                            browser.get(href)
                            if demo.service in browser.find_element(By.ID, "samples").text:
                                browser.save_screenshot(str(out / "zpages-tracez-errors.png"))
                                break
                    finally:
                        browser.quit()
    for f in sorted(out.glob("zpages-*.png")):
        print(f"wrote {f.relative_to(REPO) if f.is_relative_to(REPO) else f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
