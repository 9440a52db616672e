"""BENCHMARKS.md, rendered from the raw figures kept in docs/benchmarks/: speed and scale (``make bench``) and
quality (``make evaluate``). Both targets run it after measuring; ``python -m jobs.quality.report`` re-renders.
"""

from __future__ import annotations

import json

from jobs.lib.config import REPO_ROOT
from jobs.quality import bench, evaluate

REPORT = REPO_ROOT / "BENCHMARKS.md"


def write_report() -> str:
    results = [json.loads(f.read_text()) for s in bench.SCALES if (f := bench.RESULTS / f"bench_{s}.json").exists()]
    text = bench.render(results)
    if evaluate.RESULT.exists():
        text += "\n" + evaluate.render(json.loads(evaluate.RESULT.read_text()))
    REPORT.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    write_report()
