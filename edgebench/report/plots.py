"""Static Pareto plots (PNG and SVG) for papers and slides."""
from __future__ import annotations

from pathlib import Path

from edgebench.report.pareto import rank_ms
from edgebench.report.summary import chart_groups, group_key, recommend


def plain(text) -> str:
    """Text matplotlib draws as is: a '$' would otherwise start mathtext (and fail on odd names)."""
    return str(text).replace("$", r"\$")


def pareto_png(rows: list[dict], path: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    groups = [k for k in chart_groups(rows)
              if any(group_key(r) == k and r["status"] == "ok" and r["top1"] is not None for r in rows)]
    if not groups:
        return []
    fig, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 5), squeeze=False)
    markers = {"fp32": "o", "bf16": "s", "fp16": "D", "int8": "^"}
    for ax, (group, source) in zip(axes[0], groups):
        members = [r for r in rows if (r["group"], r["source"]) == (group, source) and r["status"] == "ok"
                   and r["top1"] is not None]
        throughput = any(r.get("axis") == "throughput" for r in members)  # an offline group: x is 1 / throughput
        backends = sorted({r["backend"] for r in members})
        colors = dict(zip(backends, plt.cm.tab10.colors))  # type: ignore[attr-defined]  # a ListedColormap; stubs say Colormap
        for r in members:
            # max(0, ...): an interval from an estimate need not contain the point (matplotlib refuses)
            xerr = [[max(0.0, r["median_ms"] - r["ci_low_ms"])], [max(0.0, r["ci_high_ms"] - r["median_ms"])]] \
                if r["ci_low_ms"] is not None and r["ci_high_ms"] is not None and not throughput else None
            yerr = [[max(0.0, 100 * (r["top1"] - r["top1_ci_low"]))], [max(0.0, 100 * (r["top1_ci_high"] - r["top1"]))]] \
                if r["top1_ci_low"] is not None and r["top1_ci_high"] is not None else None
            ax.errorbar(rank_ms(r), 100 * r["top1"], xerr=xerr, yerr=yerr, fmt=markers.get(r["precision"], "o"),
                        color=colors[r["backend"]], markersize=9 if r["pareto"] else 6,
                        markeredgecolor="black" if r["pareto"] else "none", alpha=0.9, capsize=2)
        front = sorted((r for r in members if r["pareto"]), key=rank_ms)
        ax.plot([rank_ms(r) for r in front], [100 * r["top1"] for r in front], "k--", lw=1, label="Pareto front")
        for r in front:
            ax.annotate(plain(f"{r['name']} ({r['backend']}, {r['precision']})"), (rank_ms(r), 100 * r["top1"]),
                        textcoords="offset points", xytext=(5, 5), fontsize=7)
        choice = recommend(rows, group=(group, source))
        if choice:
            ax.plot(rank_ms(choice), 100 * choice["top1"], "*", color="#1a9641", markersize=20,
                    markeredgecolor="black", zorder=5, label="recommended")
        for b in backends:
            ax.plot([], [], "o", color=colors[b], label=plain(b))
        for p, mk in markers.items():
            if any(r["precision"] == p for r in members):
                ax.plot([], [], mk, color="gray", label=p)
        label = "estimated" if source == "estimated" else "measured"
        ax.set_title(plain(f"{group} ({label})"), fontsize=10)
        lat = [rank_ms(r) for r in members]
        if max(lat) / min(lat) > 8:
            ax.set_xscale("log")
            plain_ticks = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
            ax.xaxis.set_major_formatter(plain_ticks)
            ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
                lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))  # 2 and 5 only: no crowding
        ax.set_xlabel("ms per sample = 1 / throughput (offline)" if throughput
                      else "median latency, ms (batch 1; bars: 95% CI)")
        ax.set_ylabel("top-1 accuracy, % (bars: 95% Wilson CI)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best", markerscale=0.7)
    fig.suptitle(plain(title), fontsize=11)
    fig.tight_layout()
    written = []
    for suffix in (".png", ".svg"):
        out = path.with_suffix(suffix)
        fig.savefig(out, dpi=120)
        written.append(out)
    plt.close(fig)
    return written
