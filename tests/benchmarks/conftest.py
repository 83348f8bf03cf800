"""benchmarks/ is a folder of scripts run from the repository root, not an installed package:
put the root on sys.path so that these tests import it the way `python -m benchmarks.run` does."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
