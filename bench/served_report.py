"""The served benchmark's results as a table and a plot in docs/benchmarks.md, between its own markers
(another section of that file belongs to another benchmark and is left as it is)."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
PLOT = DOC.parent / "benchmarks-served.png"  # bench/results/ is not committed; the docs need the plot
BEGIN, END = "<!-- served:begin -->", "<!-- served:end -->"
COMMAND = "sudo python3 -m pip install -e '.[bench]' && sudo python3 bench/served.py"


def plot(results: dict) -> None:
    """Successful requests/s and p99 latency against concurrency, one line per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concurrency = results["concurrency"]
    fig, (rate, p99, failed) = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, rows in results["table"].items():
        rate.plot(concurrency, [rows[str(c)]["ok_rps"] for c in concurrency], marker="o", label=name)
        p99.plot(concurrency, [rows[str(c)]["p99_ms"] or float("nan") for c in concurrency], marker="o", label=name)
        failed.plot(concurrency, [_failed_percent(results["slices"], name, c) for c in concurrency], marker="o",
                    label=name)
    rate.set(xscale="log", xlabel="concurrent clients (wrk -c)", ylabel="successful requests/s (median round)",
             title="POST /predict: successful requests/s")
    p99.set(xscale="log", yscale="log", xlabel="concurrent clients (wrk -c)", ylabel="p99 latency, ms",
            title="p99 latency (median round; a 502 counts)")
    failed.set(xscale="log", xlabel="concurrent clients (wrk -c)", ylabel="% of requests",
               title="failed requests (any kind, all rounds)")
    for ax in (rate, p99, failed):
        ax.set_xticks(concurrency, [str(c) for c in concurrency])
        ax.grid(True, alpha=0.3)
    rate.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=90)
    plt.close(fig)


def _failed_percent(slices: list[dict], name: str, c: int) -> float:
    """Failed requests of every kind over all requests wrk made (answered or not), in percent."""
    mine = [s for s in slices if s["server"] == name and s["c"] == c]
    failed = sum(s["non_2xx"] + s["connect"] + s["read"] + s["write"] + s["timeout"] for s in mine)
    return 100 * failed / max(1, sum(s["answered"] + s["connect"] + s["timeout"] for s in mine))


def _errors(errors: dict) -> str:
    shown = [f"{kind.replace('_', '-')} {count}" for kind, count in errors.items() if count]
    return ", ".join(shown) or "0"


def table(results: dict) -> list[str]:
    rows = ["| server | clients | ok req/s | vs provision | errors (all rounds) | p50 ms | p99 ms "
            "| slices without answer |", "|---|---:|---:|---:|---|---:|---:|---:|"]
    mine = results["table"]["provision"]
    for name, per_c in results["table"].items():
        for c in map(str, results["concurrency"]):
            r = per_c[c]
            ratio = r["ok_rps"] / mine[c]["ok_rps"] if mine[c]["ok_rps"] else 0
            rows.append(f"| {name} | {c} | {r['ok_rps']} | {ratio:.2f} | {_errors(r['errors'])} | {r['p50_ms']} | "
                        f"{r['p99_ms']} | {r['dark_slices']}/{r['slices']} |")
    return rows


def goal_lines(results: dict) -> list[str]:
    g = results["goals"]
    lines = []
    for c in map(str, results["concurrency"]):
        lines.append(f"- c={c}: provision {g[c]['errors']} errors, {g[c]['dark_slices']} slices without answer, "
                     f"successful req/s {g[c]['rps_ratio']:.2f}x the best other ({g[c]['best_other']})")
    lines.append(f"- p99 at c=32: {g['p99_c32_vs_guides']}x the guides' configuration (goal: at most 1.5x)")
    return lines


def _load(results: dict) -> str:
    if "load_1min" not in results:
        return ""
    low, high = results["load_1min"]
    return f" The controller's 1-minute load average during the run: {low} to {high} (other work shares it)."


def section(results: dict, notes: str) -> str:
    servers = "\n".join(f"- **{name}**: `{how}`" for name, how in results["servers"].items())
    return "\n".join([
        BEGIN, "## Served stack: POST /predict under load", "",
        f"Regenerate (root; ~10 minutes, starts and removes its own lab host): `{COMMAND}`.",
        "`python3 bench/served.py --report` rewrites this section from bench/results/served.json.", "",
        f"One lab host (Debian 12, systemd-nspawn) serves the example app four ways at once, each idle while "
        f"another is measured; wrk in the controller's namespace POSTs /predict, {results['rounds']} rounds x "
        f"one {results['slice_seconds']}-second slice per server and concurrency, the servers taking turns "
        f"slice by slice. Medians over the rounds (p99: the median round's; a failed request's latency counts "
        f"too); errors summed. Absolute figures drift about 2x between days on this 2-core machine (wrk shares it): "
        f"compare within the table.{_load(results)}", "", servers, "",
        *table(results), "", "Goals (issue 10), as ratios in this run:", *goal_lines(results), "",
        f"![served benchmark]({PLOT.name})", "", notes.strip(), END])


def write_report(results: dict) -> None:
    plot(results)
    notes_file = Path(__file__).with_name("served-notes.md")  # the reasons, written by hand
    text = section(results, notes_file.read_text() if notes_file.exists() else "")
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        current = head + text + rest.split(END, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    DOC.write_text(current)
    print(f"wrote {DOC} and {PLOT}")
