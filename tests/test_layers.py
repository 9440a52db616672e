"""The layering of jobs/ as a contract (pyproject's [tool.importlinter]): a wing imports only the wings below it
(library > quality > review | runtime > stages | dfu > lib), schemas/ imports no job, and no two sibling modules
or wings import each other in a cycle."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_imports_keep_the_layers_and_have_no_cycle():
    lint = Path(sys.executable).parent / "lint-imports"
    res = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 kept, 0 broken" in res.stdout
