"""The table, the goals of issue 20 and the plot of one bench/model_release.py run.

    python3 bench/model_report.py      # again from bench/results/model-release.json

Every ratio is within the run: provision against the floors and the example app measured beside it.
The plot is a plain SVG written here (no plotting library): docs/benchmarks-model-release.svg.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

PLOT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks-model-release.svg"
RESULTS = Path(__file__).resolve().parent / "results" / "model-release.json"
SHAPED = " (20 Mbit/s)"
MB = 1e6


def restarts(rows: dict) -> tuple[float, float]:
    """The config-only restart of the model app and of the example app: each the mean of there and back."""
    def mean(name: str) -> float:
        return (rows[name]["seconds"] + rows[name + " back"]["seconds"]) / 2
    return mean("restart"), mean("example restart")


def floor2(rows: dict, change: str, suffix: str = "") -> float:
    """rsync of the changed tree plus the model app's config-only restart."""
    return rows[f"{change} rsync{suffix}"]["seconds"] + restarts(rows)[0]


def goals(figures: dict) -> list[tuple[str, str, bool]]:
    """(goal, the run's figures, met) for each goal of issue 20."""
    rows, changed = figures["rows"], figures["changed"]
    model, example = restarts(rows)
    code, weights, shaped = rows["code change"], rows["weights change"], rows["code change" + SHAPED]
    weights_bytes = figures["weights_mb"] * MB
    builds = sum("venv to build" in row["detail"] for name, row in rows.items() if not name.startswith("example"))
    return [
        ("config-only restart <= 1.5x the example app's; no NO MERCY",
         f"{model:.1f} s / {example:.1f} s = {model / example:.2f}x; {figures['no_mercy']} NO MERCY lines",
         model / example <= 1.5 and figures["no_mercy"] == 0),
        ("code change: wall <= 1.5x the restart",
         f"{code['seconds']:.1f} s / {model:.1f} s = {code['seconds'] / model:.2f}x", code["seconds"] <= 1.5 * model),
        ("code change: sent <= changed + 1 MB",
         f"{code['sent'] / MB:.3f} MB for {changed['code change'] / MB:.4f} MB changed",
         code["sent"] <= changed["code change"] + MB),
        ("weights change: sent <= 1.1x the file",
         f"{weights['sent'] / MB:.1f} MB / {weights_bytes / MB:.0f} MB = {weights['sent'] / weights_bytes:.3f}x",
         weights["sent"] <= 1.1 * weights_bytes),
        ("weights change: wall <= 1.2x rsync + restart",
         f"{weights['seconds']:.1f} s / {floor2(rows, 'weights change'):.1f} s = "
         f"{weights['seconds'] / floor2(rows, 'weights change'):.2f}x",
         weights["seconds"] <= 1.2 * floor2(rows, "weights change")),
        ("host disk per code change <= changed + 5 MB",
         f"{code['disk'] / MB:.3f} MB", code["disk"] <= changed["code change"] + 5 * MB),
        ("venv built once per requirements key",
         f"{builds} builds, {len(figures['venvs'])} keys", builds == len(figures["venvs"])),
        ("20 Mbit/s: code change <= 1.3x rsync + restart",
         f"{shaped['seconds']:.1f} s / {floor2(rows, 'code change', SHAPED):.1f} s = "
         f"{shaped['seconds'] / floor2(rows, 'code change', SHAPED):.2f}x",
         shaped["seconds"] <= 1.3 * floor2(rows, "code change", SHAPED)),
        ("cold deploy <= 1.1x rsync + the same package installs",
         f"{rows['cold']['seconds']:.1f} s / {rows['cold floor']['seconds']:.1f} s = "
         f"{rows['cold']['seconds'] / rows['cold floor']['seconds']:.2f}x",
         rows["cold"]["seconds"] <= 1.1 * rows["cold floor"]["seconds"]),
    ]


def steps(rows: dict) -> list[tuple[str, dict, str, float, int | None]]:
    """Each step of provision's beside its floor: (step, its row, the floor, the floor's wall s, its bytes sent)."""
    model, example = restarts(rows)
    out = [("cold", rows["cold"], "rsync + installs", rows["cold floor"]["seconds"], rows["cold floor"]["sent"]),
           ("no-op", rows["no-op"], "", 0.0, None),
           ("restart (mean of 2)", {**rows["restart"], "seconds": model}, "example app",
            example, None)]
    for suffix in ("", SHAPED):
        for change in ("code change", "weights change", "requirements change"):
            out.append((change.removesuffix(" change") + suffix, rows[change + suffix], "rsync + restart",
                        floor2(rows, change, suffix),
                        rows[f"{change} rsync{suffix}"]["sent"]))
    return out


def report(figures: dict) -> None:
    rows = figures["rows"]
    load = figures["load"]
    print(f"weights {figures['weights_mb']} MB; load average (1, 5, 15 min) at the start {load[:3]}, "
          f"at the end {load[3:]}; config-only restarts (there and back): the model app "
          f"{rows['restart']['seconds']:.1f} and {rows['restart back']['seconds']:.1f} s, the example app "
          f"{rows['example restart']['seconds']:.1f} and {rows['example restart back']['seconds']:.1f} s")
    print("| step | wall s | sent MB | host disk +MB | CPU s | floor | floor wall s | floor sent MB | x floor |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for name, row, floor, seconds, sent in steps(rows):
        floor_cells = (f"{floor} | {seconds:.1f} | {'-' if sent is None else f'{sent / MB:.2f}'} | "
                       f"{row['seconds'] / seconds:.2f}" if floor else "- | - | - | -")
        print(f"| {name} | {row['seconds']:.1f} | {row['sent'] / MB:.2f} | {row['disk'] / MB:.1f} | {row['cpu']:.1f} | "
              f"{floor_cells} |")
    print()
    print("| goal (ratio within this run) | figures | met |")
    print("|---|---|---|")
    for goal, detail, met in goals(figures):
        print(f"| {goal} | {detail} | {'yes' if met else '**no**'} |")


def plot(figures: dict) -> None:
    """Horizontal bars: provision's wall time beside its floor's, per step."""
    pairs = [(name, row["seconds"], seconds, floor) for name, row, floor, seconds, _ in steps(figures["rows"]) if floor]
    PLOT.write_text(svg_bars(pairs, f"wall time, s: one run, one Debian 12 lab host, {figures['weights_mb']} MB of weights"))


def svg_bars(pairs: list[tuple[str, float, float, str]], title: str) -> str:
    """An SVG of two bars per label: provision (dark) and its floor (light), to scale, values printed."""
    left, width, bar, gap = 190, 480, 12, 14
    top = 40
    scale = width / max(max(p, f) for _, p, f, _ in pairs)
    height = top + len(pairs) * (2 * bar + gap) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 170}" height="{height}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{left}" y="26" width="10" height="10" fill="#345"/><text x="{left + 14}" y="35">provision</text>',
           f'<rect x="{left + 90}" y="26" width="10" height="10" fill="#9bd"/>'
           f'<text x="{left + 104}" y="35">floor (named at the bar)</text>']
    for i, (label, ours, floor, floor_label) in enumerate(pairs):
        y = top + i * (2 * bar + gap)
        out.append(f'<text x="{left - 6}" y="{y + bar + 4}" text-anchor="end">{escape(label)}</text>')
        for j, (value, colour, note) in enumerate([(ours, "#345", ""), (floor, "#9bd", floor_label)]):
            w = max(value * scale, 1)
            out.append(f'<rect x="{left}" y="{y + j * bar}" width="{w:.1f}" height="{bar - 1}" fill="{colour}"/>')
            text = f"{value:.1f}" + (f"  {note}" if note else "")
            out.append(f'<text x="{left + w + 4:.1f}" y="{y + j * bar + bar - 2}" font-size="10">{escape(text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    saved = json.loads(RESULTS.read_text())
    report(saved)
    plot(saved)
