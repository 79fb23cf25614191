"""The deploy-speed section of docs/benchmarks.md and its plot, from bench/results/compare.json.

Only the text between `<!-- deploy-speed:begin -->` and `<!-- deploy-speed:end -->` is replaced
(the markers are appended if the file lacks them), so other sections stay as their writers left them.
"""

from __future__ import annotations

import statistics
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC = DOCS / "benchmarks.md"
PLOT = DOCS / "benchmarks-deploy-speed.png"
NOTES = Path(__file__).with_name("compare-notes.md")  # the readings of the figures, written by hand
BEGIN, END = "<!-- deploy-speed:begin -->", "<!-- deploy-speed:end -->"
ORDER = ("floor", "probe-floor", "provision", "pyinfra", "ansible-pipelining", "ansible")
LABEL = {"floor": "floor: bench/floor.sh, 1 OpenSSH session/host", "probe-floor": "provision's floor: its probe over OpenSSH",
         "provision": "provision", "pyinfra": "pyinfra", "ansible": "ansible-core",
         "ansible-pipelining": "ansible-core + pipelining"}
COLD_FLOOR = "floor: one bash script doing the same installs, 1 OpenSSH session/host"


def _channels(runs: list[dict], extra: list[dict]) -> dict:
    """The first valid count of this cell: from its own runs, else from a channel-count pass."""
    for r in [*runs, *extra]:
        if r.get("channels", -1) >= 0:
            return {"connections": r["connections"], "channels": r["channels"], "sftp": r["sftp"]}
    return {"connections": "-", "channels": "-", "sftp": 0}


def cells(rows: list[dict], extra_rows: list[dict] = ()) -> dict[tuple[str, int, str], dict]:
    """(kind, n, tool) -> medians of seconds, CPU, RSS, the channels, the run count."""
    out: dict = {}
    for key in sorted({(r["kind"], r["n"], r["tool"]) for r in rows}):
        runs = [r for r in rows if (r["kind"], r["n"], r["tool"]) == key]
        extra = [r for r in extra_rows if (r["kind"], r["n"], r["tool"]) == key]
        good = [r for r in runs if r["ok"]] or runs
        rss = [r["rss_mib"] for r in good if r.get("rss_mib") is not None]
        out[key] = {"seconds": statistics.median(r["seconds"] for r in good),
                    "cpu": statistics.median(r["cpu"] for r in good), "rss": statistics.median(rss) if rss else None,
                    "runs": len(runs), "failed": len(runs) - sum(r["ok"] for r in runs), **_channels(runs, extra),
                    "end_state": runs[0].get("end_state", ""), "from": ", ".join(sorted({r.get("run", "") for r in runs}))}
    return out


def table(figures: dict, kind: str) -> list[str]:
    c = cells(figures["rows"], figures.get("extra_rows", []))
    ns = sorted({n for (k, n, _t) in c if k == kind})
    lines = ["| contender | N | wall s (median) | x floor | runs | controller CPU s | peak RSS MiB "
             "| SSH conns / channels (+sftp) on host 1 | end state | run |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for n in ns:
        floor = c.get((kind, n, "floor"))
        for tool in ORDER:
            cell = c.get((kind, n, tool))
            if not cell:
                continue
            ratio = f"{cell['seconds'] / floor['seconds']:.2f}" if floor else "-"
            name = COLD_FLOOR if kind == "cold" and tool == "floor" else LABEL[tool]
            failed = f" ({cell['failed']} failed)" if cell["failed"] else ""
            sftp = f" +{cell['sftp']}" if cell["sftp"] else ""
            end = cell["end_state"] if cell["end_state"] in ("equal", "") else "DIFFERS: " + cell["end_state"][:80]
            lines.append(f"| {name} | {n} | {cell['seconds']:.2f} | {ratio} | {cell['runs']}{failed} | {cell['cpu']:.2f} "
                         f"| {_mib(cell['rss'])} | {cell['connections']} / {cell['channels']}{sftp} | {end or '-'} "
                         f"| {cell['from']} |")
    return lines


def _mib(rss: float | None) -> str:
    return "-" if rss is None else f"{rss:.0f}"


def growth(figures: dict) -> list[str]:
    """No-op wall, controller CPU and peak RSS of each contender against N, and the cost of each
    host added between the two largest N."""
    c = cells(figures["rows"])
    ns = sorted({n for (k, n, _t) in c if k == "noop"})
    if len(ns) < 2:
        return []
    a, b = ns[-2], ns[-1]
    per_n = " / ".join(map(str, ns))
    lines = [f"| contender | wall s, N = {per_n} | controller CPU s, N = {per_n} | peak RSS MiB, N = {per_n} "
             f"| per host added, N {a} -> {b}: wall s / CPU s |", "|---|---:|---:|---:|---:|"]
    for tool in ORDER:
        row = [c.get(("noop", n, tool)) for n in ns]
        if not row[-1] or not row[-2]:
            continue
        show = [lambda x: f"{x['seconds']:.2f}", lambda x: f"{x['cpu']:.2f}", lambda x: _mib(x["rss"])]
        cols = [" / ".join(f(x) if x else "-" for x in row) for f in show]
        slope = f"{(row[-1]['seconds'] - row[-2]['seconds']) / (b - a):.3f} / {(row[-1]['cpu'] - row[-2]['cpu']) / (b - a):.3f}"
        lines.append(f"| {LABEL[tool].split(':')[0]} | {cols[0]} | {cols[1]} | {cols[2]} | {slope} |")
    return lines


def forks_table(figures: dict) -> list[str]:
    """provision's no-op at each --forks value measured (the `provision` row runs max(N, 10) at once)."""
    c, rows = cells(figures["rows"]), []
    for n in sorted({n for (k, n, t) in c if k == "noop" and t.startswith("provision-forks")}):
        floor = c.get(("noop", n, "floor"))
        variants = {int(t.removeprefix("provision-forks")): cell for (k, m, t), cell in c.items()
                    if k == "noop" and m == n and t.startswith("provision-forks")}
        if ("noop", n, "provision") in c:
            variants.setdefault(max(n, 10), c[("noop", n, "provision")])
        for forks, cell in sorted(variants.items()):
            ratio = f"{cell['seconds'] / floor['seconds']:.2f}" if floor else "-"
            rows.append(f"| {forks} | {n} | {cell['seconds']:.2f} | {ratio} | {cell['cpu']:.2f} | {_mib(cell['rss'])} "
                        f"| {cell['runs']} | {cell['from']} |")
    head = ["| --forks | N | wall s (median) | x floor | controller CPU s | peak RSS MiB | runs | run |",
            "|---:|---:|---:|---:|---:|---:|---:|---|"]
    return head + rows if rows else []


def wrong_way(figures: dict) -> list[str]:
    """Every place provision misses a goal of issue 11 or loses to another contender, in words."""
    c, notes = cells(figures["rows"]), []
    for (kind, n, tool), cell in sorted(c.items()):
        if tool != "provision":
            continue
        floor = c.get((kind, n, "floor"))
        goal = 1.5 if kind == "noop" else 1.1
        if floor and cell["seconds"] > goal * floor["seconds"]:
            notes.append(f"- {kind} N={n}: provision {cell['seconds']:.2f} s is {cell['seconds'] / floor['seconds']:.2f}x "
                         f"the floor's {floor['seconds']:.2f} s (goal <= {goal}x).")
        if kind == "noop" and floor and cell["seconds"] < floor["seconds"]:
            notes.append(f"- noop N={n}: provision ({cell['seconds']:.2f} s) beat the floor ({floor['seconds']:.2f} s): "
                         "at this N the floor's one `ssh` process and key exchange per host is no lower bound.")
        for other in ("pyinfra", "ansible", "ansible-pipelining"):
            o = c.get((kind, n, other))
            if o and o["seconds"] < cell["seconds"]:
                notes.append(f"- {kind} N={n}: {other} ({o['seconds']:.2f} s) beat provision ({cell['seconds']:.2f} s).")
    for (kind, n, tool), cell in sorted(c.items()):
        if cell["end_state"] not in ("equal", ""):
            notes.append(f"- {kind} N={n}: {tool}'s end state was not provision's: {cell['end_state'][:200]}")
    return notes or ["- none in this run."]


def plot(figures: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = cells(figures["rows"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, kind, title in ((axes[0], "noop", "no-op re-deploy"), (axes[1], "cold", "cold deploy (nothing -> serving)")):
        for tool in ORDER:
            pts = sorted((n, cell["seconds"]) for (k, n, t), cell in c.items() if k == kind and t == tool)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=LABEL[tool].split(":")[0])
        ax.set_title(title)
        ax.set_xlabel("hosts (N)")
        ax.set_ylabel("wall seconds, median")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=90)


def section(figures: dict, notes: str = "") -> str:
    m, v = figures["machine"], figures["versions"]
    counts = figures.get("own_counts") or sorted({r["n"] for r in figures["rows"]})
    cold_ns = sorted({r["n"] for r in figures["rows"] if r["kind"] == "cold"})
    return "\n".join([
        "## Deploy speed: provision vs pyinfra vs ansible-core (issue 11)",
        "",
        f"Reproduce: `python3 bench/compare.py --hosts {','.join(map(str, counts))}` (root; it makes and removes "
        f"its lab hosts). The run took {figures.get('bench_minutes', '?')} min on "
        f"{m['cpus']} cores ({m['cpu']}), {int(m['memory'].split()[0]) / 2**20:.0f} GiB, kernel {m['kernel']}, "
        f"Python {m['python']}, load average {m['load_at_start']:.1f} at the start; pyinfra {v['pyinfra']}, "
        f"ansible-core {v['ansible-core']}, paramiko {v['paramiko']}, {v['openssh']}. Hosts: the container lab "
        "(Debian 12, apt through the lab's caching proxy, warm cache). Absolute figures are noisy on this shared "
        "machine: compare within a run.",
        *(["", "Cells the main run did not reach come from runs of their own (column *run*, made with "
            "`--results NAME`); a ratio across two runs is weaker evidence than one within a run."]
          if figures.get("extra") else []),
        "",
        "Method. Every contender reaches the same end state: bench/compare_state.py exports provision's declared "
        "state, bench/pyinfra_deploy.py and bench/playbook.yml apply it, and after each cold run "
        "`provision deploy --check` finds 0 changes and bench/floor.sh nothing different (column *end state*). "
        f"*Cold*: hosts 1..N made anew, {figures['cold_rounds']} run(s) per cell, at N = {', '.join(map(str, cold_ns)) or '-'}. *No-op*: "
        f"{figures['rounds']} interleaved rounds, order rotated, medians. Wall time is the whole controller "
        "process; controller CPU is user + system of it and its children; peak RSS is GNU time's for the "
        "largest process. provision runs from its wheel in a venv, with `--forks` max(N, 10). Connections and "
        "channels are counted on host 1 by its sshd (LogLevel DEBUG1). *x floor*: against bench/floor.sh (one "
        "OpenSSH session per host; no-op) or one install script (cold) at the same N.",
        "",
        "### No-op re-deploy", "", *table(figures, "noop"), "",
        "### Cold deploy", "", ("Cold runs of the main run are interleaved as the no-op rounds are (order rotated "
                                "each round), medians. " if figures["cold_rounds"] > 1 else "") +
        "A cold cell of another run is one run at its own moment, weaker evidence than an interleaved one.", "",
        *table(figures, "cold"), "",
        f"![wall time by host count]({PLOT.name})", "",
        *(["### How time and controller CPU/memory grow with N (no-op)", "", *growth(figures), ""]
          if growth(figures) else []),
        *(["### `--forks` at N hosts (no-op, provision)", "", *forks_table(figures), ""] if forks_table(figures) else []),
        *([notes.strip(), ""] if notes.strip() else []),
        "### Where the numbers go the wrong way", "", *wrong_way(figures), "",
    ])


def _tagged(row: dict, run: dict) -> dict:
    """The row with the name of its run; its RSS dropped where that run did not measure it with GNU time."""
    rss = row.get("rss_mib") if run.get("rss_method") == "gnu-time" else None
    return {**row, "run": run.get("name") or "compare", "rss_mib": rss}


# Runs started before this fed their floors' hosts the script one host after another (compare_tools.py
# measure() before its fix): at N >= 2 those figures are no floor, and they are left out.
SERIAL_FLOORS_BEFORE = "2026-11-27 21:39 UTC"


def _measured_right(row: dict, run: dict) -> bool:
    return not (row["tool"] in ("floor", "probe-floor") and row["n"] >= 2
                and run.get("started", "") < SERIAL_FLOORS_BEFORE)


def _with_valid_floors(figures: dict, extra_runs: list[dict]) -> tuple[dict, list[dict]]:
    """The runs without their floors measured in turn. Where that leaves the main run without a floor
    at some (kind, N), the newest other run with one gives the cells it has of that N, floor and
    contenders alike: an "x floor" ratio is best read within one run."""
    extra_runs = [{**run, "rows": [r for r in run["rows"] if _measured_right(r, run)]} for run in extra_runs]
    main_floors = {(r["kind"], r["n"]) for r in figures["rows"] if r["tool"] == "floor" and _measured_right(r, figures)}
    floored = {(r["kind"], r["n"]): run["name"] for run in sorted(extra_runs, key=lambda run: run["started"])
               for r in run["rows"] if r["tool"] == "floor" and (r["kind"], r["n"]) not in main_floors}

    replaced = {(r["kind"], r["n"], r["tool"]) for run in extra_runs for r in run["rows"]
                if floored.get((r["kind"], r["n"])) == run["name"]}

    def kept(row: dict, run: dict) -> bool:
        return (row["kind"], row["n"], row["tool"]) not in replaced or floored[(row["kind"], row["n"])] == run["name"]
    return ({**figures, "rows": [r for r in figures["rows"] if _measured_right(r, figures) and kept(r, figures)]},
            [{**run, "rows": [r for r in run["rows"] if kept(r, run)]} for run in extra_runs])


def write_report(figures: dict, extra_runs: list[dict] = ()) -> None:
    """`extra_runs`: other result files of compare.py: their channel counts fill the main run's gaps,
    and their cells appear where the main run has none."""
    figures, extra_runs = _with_valid_floors(figures, extra_runs)
    extra = [_tagged(r, run) for run in extra_runs for r in run["rows"]]
    own = {(r["kind"], r["n"], r["tool"]) for r in figures["rows"]}
    # cells the main run did not reach (e.g. N=10 measured by a run of its own) come from the others
    # a channel-count pass ("timing": false: sshd logging at DEBUG1) gives channels, never times
    timed = [_tagged(r, run) for run in extra_runs if run.get("timing", True) for r in run["rows"]]
    figures = {**figures, "own_counts": sorted({r["n"] for r in figures["rows"]}), "extra": extra_runs, "extra_rows": extra, "rows": [_tagged(r, figures) for r in figures["rows"]] + [
        r for r in timed if (r["kind"], r["n"], r["tool"]) not in own]}
    plot(figures)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    notes = NOTES.read_text() if NOTES.exists() else ""
    DOC.write_text(f"{head}{BEGIN}\n{section(figures, notes)}\n{END}{tail}")
    print(f"wrote {DOC} and {PLOT}")
