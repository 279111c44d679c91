"""The chaos test builds on the e2e modules (backlog generator, search proxy): import them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))
