"""Open a local HTML file in headless Chromium (Debian's package) and collect what went wrong."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags keep Chromium from phoning home, which this closed network would refuse noisily.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make browser)")


@dataclass
class PageCheck:
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def open_page(path: Path, selectors: dict[str, str], wait_ms: int = 2500) -> PageCheck:
    """Load ``path``; count elements matching each CSS selector after scripts settle."""
    from playwright.sync_api import sync_playwright

    out = PageCheck()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: out.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: out.console_errors.append(str(e)))
        page.on("requestfailed", lambda r: out.failed_requests.append(r.url))
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(wait_ms)
        out.counts = {name: page.locator(sel).count() for name, sel in selectors.items()}
        browser.close()
    return out
