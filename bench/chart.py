"""PNG chart of a side-by-side result: throughput per contender, and latency percentiles."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def chart(result_path: Path, png_path: Path) -> None:
    result = json.loads(result_path.read_text())
    names = list(result["contenders"])
    tput = [result["contenders"][n]["throughput"]["events_per_s"] for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.4))
    bars = left.bar(names, tput, color=["#888" if n not in ("ours",) else "#1f77b4" for n in names])
    left.bar_label(bars, labels=[f"{v:,}" for v in tput], fontsize=8)
    left.set_yscale("log")
    # from a decade below the lowest, so that close contenders do not look far apart
    left.set_ylim(10 ** (math.floor(math.log10(max(min(tput), 10))) - 1), max(tput) * 1.5)
    left.tick_params(axis="x", labelrotation=30)
    left.set_ylabel("events/s (log)")
    left.set_title("Sustained throughput, preloaded inputs")
    width = 0.25
    common = result.get("common_rate", {}).get("events_per_s")
    series = [("latency", "p50_ms", "p50, own load"), ("latency", "p99_ms", "p99, own load"),
              ("latency_common", "p99_ms", f"p99 at {common or 0:,.0f} events/s")]  # fmt: skip
    for i, (phase, pct, label) in enumerate(series):
        values = [result["contenders"][n].get(phase, {}).get(pct, 0) or 0 for n in names]
        xs = [x + (i - 1) * width for x in range(len(names))]
        right.bar(xs, values, width, label=label)
    right.set_xticks(range(len(names)), names, rotation=30)
    if any(c.get("latency", {}).get("p99_ms") for c in result["contenders"].values()):
        right.set_yscale("log")
    else:  # a run without latency (--latency-s 0)
        right.text(0.5, 0.5, "no latency measured", ha="center", transform=right.transAxes)
    right.set_ylabel("ms (log)")
    load = result.get("settings", {}).get("load", 0.5)
    right.set_title(f"Input append -> score change append, open loop at {load:.0%} of each "
                    "one's max and at one common rate", fontsize=9)  # fmt: skip
    right.legend()
    fig.suptitle(
        f"leadscore side-by-side, {result['run_at'][:10]}, {result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    chart(Path(sys.argv[1]), Path(sys.argv[2]))
