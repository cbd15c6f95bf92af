"""Screenshots of every dashboard page for the README (docs/screenshots/*.png).

    python bench/screenshots.py      # starts streamlit on a free loopback port, drives Debian's chromium

Each page is opened from the sidebar (as a user would) and shot once its charts have drawn.
"""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
PAGES = ["Home", "Pruning", "Clustering", "Quantization", "Distillation", "Pipeline", "Compare", "Export"]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                               "--server.headless", "true", "--server.address", "127.0.0.1",
                               "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            for name in PAGES:
                page.locator('[data-testid="stSidebarNav"] a', has_text=name).click()
                page.wait_for_timeout(1000)
                page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=120_000)
                page.wait_for_timeout(1500)
                path = OUT / f"{name.lower()}.png"
                page.screenshot(path=str(path), full_page=False)
                print("wrote", path.relative_to(ROOT))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
