"""Summaries (median, min-max), ratios within one run, the targets, and the outputs:
results.json, results.md and chart.png."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["machine", "summarize", "targets", "write_outputs"]

MB = 1_000_000


def machine() -> dict[str, Any]:
    """Where the numbers came from."""
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    df = subprocess.run(["df", "-T", "/var/tmp"], capture_output=True, text=True).stdout.splitlines()[-1].split()
    return {
        "cpu": cpu,
        "cores": __import__("os").cpu_count(),
        "memory_gib": round(int(mem.split()[1]) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "filesystem": f"{df[1]} on {df[0]}" if len(df) > 1 else "?",
    }


def summarize(runs: list[dict[str, Any]], nbytes: int, files: int) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    med = statistics.median(seconds)
    return {
        "runs": runs,
        "median": med,
        "min": min(seconds),
        "max": max(seconds),
        "mb_s": nbytes / MB / med,
        "files_s": files / med,
        "client_cpu": statistics.median(r["client_cpu"] for r in runs),
        "server_cpu": statistics.median(r["server_cpu"] for r in runs),
    }


def _ratio(results: dict[str, Any], case: str, dms: str, peer: str) -> float | None:
    """How many times faster DMS is than `peer` (peer's median time / DMS's), one run's data."""
    table = results.get(case, {})
    if dms not in table or peer not in table:
        return None
    return float(table[peer]["median"] / table[dms]["median"])


def targets(results: dict[str, Any], rss: dict[str, float]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured ratio (None: a peer was skipped)."""
    rows: list[dict[str, Any]] = []

    def add(case: str, what: str, value: float | None, goal: float) -> None:
        rows.append({"case": case, "target": what, "measured": value, "goal": goal,
                     "met": None if value is None else value >= goal})  # fmt: skip

    def report(case: str, what: str, value: float | None) -> None:
        rows.append({"case": case, "target": what, "measured": value, "goal": None, "met": None})

    add("L local", ">= 0.95 x cp -a", _ratio(results, "L local", "dms (service)", "cp -a"), 0.95)
    report("L local", "fraction of the disk floor (report)", _ratio(results, "L local", "dms (service)", "disk floor"))
    for case, dms, suffix in (("L tcp", "dms (tcp)", ""), ("L veth", "dms (veth)", " (veth)")):
        add(case, ">= 1.2 x globus-url-copy -p 4", _ratio(results, case, dms, f"globus-url-copy -p 4{suffix}"), 1.2)
        report(case, "fraction of iperf3 (report)", _ratio(results, case, dms, f"iperf3 -P 4{suffix}"))
        report(case, "fraction of the disk floor (report)", _ratio(results, case, dms, "disk floor"))
    add("M local", ">= 0.9 x cp -a", _ratio(results, "M local", "dms (service)", "cp -a"), 0.9)
    peers = [
        r
        for r in (_ratio(results, "M local", "dms (service)", p) for p in ("rsync -a", "rclone copy", "fpsync -n 4"))
        if r is not None
    ]
    add("M local", ">= 1.5 x best of rsync/rclone/fpsync", min(peers) if peers else None, 1.5)
    add("S local", ">= 1.0 x rsync -a files/s", _ratio(results, "S local", "dms (service)", "rsync -a"), 1.0)
    add("S re-sync", ">= 1.0 x rsync -a (aim 2)", _ratio(results, "S re-sync", "dms (service)", "rsync -a"), 1.0)
    worst = max(rss.values()) if rss else None
    rows.append({"case": "any", "target": "worker RSS < 256 MiB", "measured": worst, "goal": 256,
                 "met": worst is not None and worst < 256})  # fmt: skip
    return rows


def _settled(doc: dict[str, Any]) -> str:
    settle = doc.get("settle") or 0
    return f", {settle:g} s after each destination was removed" if settle else ""


def _markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, "
             f"{m['filesystem']}; Python {m['python']}. {doc['repeat']} runs per tool, alternating; page cache "
             f"dropped before every run{_settled(doc)}; median (min-max). Scale {doc['scale']}.", ""]  # fmt: skip
    for case, table in doc["results"].items():
        ds = doc["datasets"][case.split()[0]]
        dms = next((t for t in ("dms (service)", "dms (tcp)", "dms (veth)") if t in table), None)
        lines += [f"### {case}: {ds['describe']}", "",
                  "| tool | time s | MB/s | files/s | CPU client s | CPU server s | DMS speed-up |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for tool, s in table.items():
            ratio = f"{s['median'] / table[dms]['median']:.2f} x" if dms and tool != dms else ""
            lines.append(f"| {tool} | {s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f}) | {s['mb_s']:.0f} | "
                         f"{s['files_s']:.0f} | {s['client_cpu']:.1f} | {s['server_cpu']:.1f} | {ratio} |")  # fmt: skip
        lines.append("")
    lines += ["### Targets", "", "| case | target | measured | met |", "|---|---|---|---|"]
    for t in doc["targets"]:
        value = "skipped" if t["measured"] is None else f"{t['measured']:.2f}"
        met = "" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['case']} | {t['target']} | {value} | {met} |")
    if doc["rss_mib"]:
        lines += ["", "Peak RSS of DMS processes (VmHWM, MiB): " + ", ".join(
            f"{k} {v:.0f}" for k, v in sorted(doc["rss_mib"].items(), key=lambda kv: -kv[1]))]  # fmt: skip
    if doc["notes"]:
        lines += ["", "Notes:", *(f"- {n}" for n in doc["notes"])]
    return "\n".join(lines) + "\n"


def _chart(doc: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    cases = list(doc["results"])
    cols = min(3, len(cases))
    rows = -(-len(cases) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(5.0 * cols, 3.2 * rows), squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[len(cases) :]:
        ax.axis("off")
    for ax, case in zip(axes, cases, strict=False):
        table = doc["results"][case]
        per_file = case.startswith("S")
        names = list(table)
        values = [table[n]["files_s" if per_file else "mb_s"] for n in names]
        colors = ["#d62728" if n.startswith("dms") else "#7f7f7f" for n in names]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(f"{case} ({doc['datasets'][case.split()[0]]['describe']})", fontsize=9)
        ax.set_xlabel("files/s" if per_file else "MB/s")
        ax.tick_params(labelsize=8)
    fig.suptitle("DMS (red) beside its peers, medians, higher is better", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write_outputs(doc: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    note = _chart(doc, out / "chart.png")
    if note:
        doc["notes"].append(note)
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=str))
    (out / "results.md").write_text(_markdown(doc))
    return [out / "results.json", out / "results.md", out / "chart.png"]


if __name__ == "__main__":  # redraw the outputs of a run: python -m benchmarks.report results.json [outdir]
    import sys

    source = Path(sys.argv[1])
    document = json.loads(source.read_text())
    document["notes"] = [n for n in document["notes"] if not n.startswith("matplotlib")]
    for written in write_outputs(document, Path(sys.argv[2]) if len(sys.argv) > 2 else source.parent):
        print(f"wrote {written}")
