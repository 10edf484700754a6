"""pre-commit hook: refuse files over 1 MB (logs, result dumps, datasets)."""

import os
import sys

LIMIT = 1024 * 1024

too_big = [p for p in sys.argv[1:] if os.path.isfile(p) and os.path.getsize(p) > LIMIT]
for path in too_big:
    print(f"{path}: {os.path.getsize(path)} bytes, over {LIMIT}")
sys.exit(1 if too_big else 0)
