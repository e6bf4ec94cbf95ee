"""Static Pareto plots (PNG and SVG) for papers and slides.

Every run gets one: on its own quality axis (top-1, agreement with FP32, a user metric, as the
interactive charts name it), or, where quality was not measured, latencies alone with the axis
saying why there is no quality to plot.
"""
from __future__ import annotations

from pathlib import Path

from edgebench.report.charts import y_title, y_value
from edgebench.report.pareto import rank_ms
from edgebench.report.summary import chart_groups, group_key, recommend

MARKERS = {"fp32": "o", "bf16": "s", "fp16": "D", "int8": "^"}


def plain(text) -> str:
    """Text matplotlib draws as is: a '$' would otherwise start mathtext (and fail on odd names)."""
    return str(text).replace("$", r"\$")


def _throughput(members: list[dict]) -> bool:
    """An offline group: x is ms per sample, 1 / throughput, which has no latency interval."""
    return any(r.get("axis") == "throughput" for r in members)


def _latency_err(r: dict):
    # max(0, ...): an interval from an estimate need not contain the point (matplotlib refuses)
    if r["ci_low_ms"] is None or r["ci_high_ms"] is None or r.get("axis") == "throughput":
        return None
    return [[max(0.0, r["median_ms"] - r["ci_low_ms"])], [max(0.0, r["ci_high_ms"] - r["median_ms"])]]


def _latency_axis(ax, members: list[dict]) -> None:
    import matplotlib.ticker

    lat = [rank_ms(r) for r in members]
    if max(lat) / min(lat) > 8:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
            lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))  # 2 and 5 only: no crowding
    ax.set_xlabel("ms per sample = 1 / throughput (offline)" if _throughput(members)
                  else "median latency, ms (bars: 95% CI)")
    ax.grid(alpha=0.3)


def _legend(ax, members: list[dict], colors: dict) -> None:
    for b in sorted(colors):
        ax.plot([], [], "o", color=colors[b], label=plain(b))
    for p, mk in MARKERS.items():
        if any(r["precision"] == p for r in members):
            ax.plot([], [], mk, color="gray", label=p)
    ax.legend(fontsize=7, loc="best", markerscale=0.7)


def _scored_panel(ax, rows: list[dict], key: tuple[str, str], members: list[dict], colors: dict) -> None:
    for r in members:
        yerr = [[max(0.0, 100 * (r["top1"] - r["top1_ci_low"]))], [max(0.0, 100 * (r["top1_ci_high"] - r["top1"]))]] \
            if r["top1"] is not None and r["top1_ci_low"] is not None and r["top1_ci_high"] is not None else None
        ax.errorbar(rank_ms(r), y_value(r), xerr=_latency_err(r), yerr=yerr, fmt=MARKERS.get(r["precision"], "o"),
                    color=colors[r["backend"]], markersize=9 if r["pareto"] else 6,
                    markeredgecolor="black" if r["pareto"] else "none", alpha=0.9, capsize=2)
    front = sorted((r for r in members if r["pareto"]), key=lambda r: rank_ms(r))
    ax.plot([rank_ms(r) for r in front], [y_value(r) for r in front], "k--", lw=1, label="Pareto front")
    for r in front:
        ax.annotate(plain(f"{r['name']} ({r['backend']}, {r['precision']})"), (rank_ms(r), y_value(r)),
                    textcoords="offset points", xytext=(5, 5), fontsize=7)
    choice = recommend(rows, group=key)
    if choice:
        ax.plot(rank_ms(choice), y_value(choice), "*", color="#1a9641", markersize=20,
                markeredgecolor="black", zorder=5, label="recommended")
    ax.set_ylabel(plain(y_title(members)))


def _latency_only_panel(ax, members: list[dict], colors: dict) -> None:
    """No quality to plot against: one line per option, its latency and interval."""
    ordered = sorted(members, key=lambda r: rank_ms(r), reverse=True)  # fastest on top
    for i, r in enumerate(ordered):
        ax.errorbar(rank_ms(r), i, xerr=_latency_err(r), fmt=MARKERS.get(r["precision"], "o"),
                    color=colors[r["backend"]], markersize=7, alpha=0.9, capsize=2)
    ax.set_yticks(range(len(ordered)))
    ax.set_yticklabels([plain(f"{r['name']} ({r['backend']}, {r['precision']})" + (f" {r['shape']}" if r.get("shape")
                                                                                      else "")) for r in ordered],
                       fontsize=7)
    why = ordered[0].get("quality_text") or ""
    why = why if why.startswith("not measured") else "not measured"  # 'not measured: <reason>' from quality
    ax.set_ylabel(plain(f"option (latency only: quality {why})"), fontsize=8)


def pareto_png(rows: list[dict], path: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = chart_groups(rows)
    if not groups:
        return []
    fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 5), squeeze=False)
    for ax, key in zip(axes[0], groups):
        measured = [r for r in rows if group_key(r) == key and r["status"] == "ok" and r["median_ms"] is not None]
        scored = [r for r in measured if r["quality"] is not None]
        members = scored or measured
        backends = sorted({r["backend"] for r in members})
        colors = dict(zip(backends, plt.cm.tab10.colors))  # type: ignore[attr-defined]  # a ListedColormap; stubs say Colormap
        if scored:
            _scored_panel(ax, rows, key, scored, colors)
        else:
            _latency_only_panel(ax, measured, colors)
        label = "estimated" if key[1] == "estimated" else "measured"
        unscored = len(measured) - len(scored) if scored else 0
        ax.set_title(plain(f"{key[0]} ({label})" + (f"; {unscored} without quality not shown" if unscored else "")),
                     fontsize=10)
        _latency_axis(ax, members)
        _legend(ax, members, colors)
    fig.suptitle(plain(title), fontsize=11)
    fig.tight_layout()
    written = []
    for suffix in (".png", ".svg"):
        out = path.with_suffix(suffix)
        fig.savefig(out, dpi=120)
        written.append(out)
    plt.close(fig)
    return written
