"""The README's picture of the replay page, docs/viewer.png (issue 24).

A small run with the event log on (BACKEND lockstep, hash trainer: a second): nine
employees in SimBlock's world regions, three peers each, four of them poisoned, whose
branch grows beside the honest chain and which the employer's light client follows for a
while. Headless Chromium (Debian's chromium package) opens the run's viewer.html at a
tick where an honest block is spreading and takes the screenshot.

    python scripts/viewer_screenshot.py [--out docs/viewer.png] [--tick 167]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ["--trainer", "hash", "--backend", "lockstep", "--employees-num", "9",
       "--adversaries", "poisoned:4", "--latency", "regions", "--topology", "random:3",
       "--seed", "3", "--event-log-mb", "5", "--quiet"]
WINDOW = "1300,1400"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "viewer.png"))
    parser.add_argument("--tick", type=int, default=167,
                        help="the tick shown (167: block daf6960b2c held by 3 of 10)")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("error: headless Chromium is needed: apt-get install chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        subprocess.run([sys.executable, str(ROOT / "main.py"), *RUN, "--run-dir", str(folder),
                        "--log-file", str(Path(tmp) / "pot_sim.log")], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                        f"--user-data-dir={Path(tmp) / 'profile'}",
                        f"--window-size={WINDOW}", "--virtual-time-budget=10000",
                        f"--screenshot={Path(args.out).resolve()}",
                        f"{(folder / 'viewer.html').as_uri()}#tick={args.tick}"],
                       check=True, capture_output=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
