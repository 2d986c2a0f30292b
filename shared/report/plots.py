"""The report's PNG plots, drawn with matplotlib's Agg canvas: no display, no pyplot, no global state.

Each function takes what ``shared.report.data`` returned, writes one PNG and returns its path, or None
when there is nothing to draw (the page then says so instead of showing an empty chart).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from matplotlib import colormaps
from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Series drawn per chart (the most called); the page's variant table lists all of them.
MAX_SERIES = 10
MAX_ROLLOUTS = 6
MAX_FAMILIES = 8  # the eight prompt families
MAX_RUNS = 15
ACTION_STYLE = {"deploy": ("tab:blue", "o"), "promote": ("tab:green", "^"), "rollback": ("tab:red", "X"),
                "pause": ("tab:orange", "s"), "resume": ("tab:blue", ">")}


def _naive(t: datetime) -> datetime:
    """UTC wall time without tzinfo: every axis is in UTC whatever the machine's zone."""
    return t.astimezone(timezone.utc).replace(tzinfo=None)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100)
    return path


def _time_axis(ax) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(alpha=0.3)


def _labels(keys: list[tuple]) -> dict[tuple, str]:
    """Short names: only the parts (family, variant, model) that differ between the series shown."""
    varying = [i for i in range(3) if len({k[i] for k in keys}) > 1] or [1]
    return {k: " / ".join(str(k[i] or "-") for i in varying) for k in keys}


def metrics_png(series: dict, path: Path, marks: list[tuple[datetime, str, str]] = (),
                title: str = "") -> Path | None:
    """Quality, latency and success per variant over time; ``marks`` (time, label, colour) as vertical lines."""
    rows = series["rows"]
    if not rows:
        return None
    by_key: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        by_key[(r["family"], r["variant"], r["model"])].append(r)
    ranked = sorted(by_key, key=lambda k: (-sum(r["n"] for r in by_key[k]), tuple(str(p) for p in k)))
    shown, hidden = ranked[:MAX_SERIES], len(ranked) - MAX_SERIES
    labels = _labels(shown)
    palette = [cmap(i) for cmap in (colormaps["tab10"],) for i in range(10)]
    colours = {k: palette[i % len(palette)] for i, k in enumerate(shown)}  # one colour per series in every panel
    fig = Figure(figsize=(11, 8.5), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    panels = [("quality (mean)", lambda r: r["quality"] if r["n_quality"] else None),
              ("latency ms (mean)", lambda r: r["latency_ms"]),
              ("success rate", lambda r: r["success"])]
    for ax, (ylabel, value) in zip(axes, panels):
        for key in shown:
            points = [(_naive(r["t"]), value(r)) for r in by_key[key] if value(r) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=2.5, linewidth=1.2, label=labels[key], color=colours[key])
        lo, hi = _naive(series["start"]), _naive(series["end"])
        for when, label, colour in marks:
            if lo <= _naive(when) <= hi:
                ax.axvline(_naive(when), color=colour, linestyle="--", linewidth=1)
                if ax is axes[0]:
                    ax.annotate(label, (_naive(when), 1), xycoords=("data", "axes fraction"), fontsize=7,
                                rotation=90, va="top", ha="right", color=colour)
        ax.set_ylabel(ylabel)
        _time_axis(ax)
    axes[0].set_ylim(-0.02, 1.02)
    axes[2].set_ylim(-0.02, 1.02)
    axes[-1].set_xlabel(f"UTC, buckets of {series['width_s']} s")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="series")  # latency: every series
    if not any(r["n_quality"] for r in rows):
        axes[0].text(0.5, 0.5, "no quality scores in these events", transform=axes[0].transAxes, ha="center",
                     color="0.5")
    more = f" (+{hidden} less called series not drawn)" if hidden > 0 else ""
    fig.suptitle(f"{title + ': ' if title else ''}quality and latency per variant over time{more}")
    return _save(fig, path)


def rollouts_png(rollouts: list[dict], path: Path, now: datetime) -> Path | None:
    """Each rollout's share of traffic step by step, with the moment it was promoted or rolled back."""
    shown = [r for r in rollouts if r["transitions"]][:MAX_ROLLOUTS]
    if not shown:
        return None
    fig = Figure(figsize=(11, 1.2 + 2.1 * len(shown)), layout="constrained")
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    for ax, r in zip(axes, shown):
        steps = r["transitions"]
        end = r["finished_at"] or max(now, steps[-1]["at"])
        xs = [_naive(t["at"]) for t in steps] + [_naive(end)]
        ys = [100 * t["to_percentage"] for t in steps]
        ax.step(xs, ys + ys[-1:], where="post", color="0.3", linewidth=1.5)
        for t in steps:
            colour, marker = ACTION_STYLE.get(t["action"], ("0.4", "o"))
            ax.plot(_naive(t["at"]), 100 * t["to_percentage"], marker=marker, color=colour, markersize=8)
            ax.annotate(f"{t['action']} {100 * t['to_percentage']:.0f}%", (_naive(t["at"]), 100 * t["to_percentage"]),
                        textcoords="offset points", xytext=(4, 6), fontsize=7)
        final = {"promoted": ("tab:green", "promoted"), "rolled_back": ("tab:red", "rolled back")}.get(r["status"])
        if final:
            ax.axvline(_naive(steps[-1]["at"]), color=final[0], linewidth=2, alpha=0.7)
        ax.set_ylim(-5, 115)
        ax.set_yticks([0, 10, 25, 50, 75, 100])
        ax.set_ylabel("% of calls")
        ax.set_title(f"rollout {r['id']}: {r['family']} x {r['model']}, {r['candidate']} over {r['incumbent']} "
                     f"- {final[1] if final else r['status']}", fontsize=9, loc="left")
        _time_axis(ax)
    axes[-1].set_xlabel("UTC")
    return _save(fig, path)


def optimizations_png(runs: list[dict], path: Path) -> Path | None:
    """Per family: each run's trial scores, and its parent's and best candidate's validation objective."""
    by_family: dict[str, list[dict]] = defaultdict(list)
    for run in runs:  # oldest first
        by_family[run["family"]].append(run)
    if not by_family:
        return None
    families = sorted(by_family, key=lambda f: by_family[f][-1]["id"], reverse=True)[:MAX_FAMILIES]
    fig = Figure(figsize=(11, 1.3 + 2.6 * len(families)), layout="constrained")
    axes = fig.subplots(len(families), 1, squeeze=False)[:, 0]
    jitter = random.Random(0)
    for ax, family in zip(axes, families):
        family_runs = by_family[family][-MAX_RUNS:]
        for x, run in enumerate(family_runs):
            scores = run["trial_scores"]
            ax.scatter([x + jitter.uniform(-0.15, 0.15) for _ in scores], scores, s=10, color="0.55", alpha=0.6,
                       label="trial score (search)" if x == 0 else None)
            if run["parent_objective"] is not None:
                ax.plot(x, run["parent_objective"], marker="_", markersize=18, mew=2, color="black",
                        label="parent (validation)")
            if run["candidate_objective"] is not None:
                ax.plot(x, run["candidate_objective"], marker="*", markersize=12, color="tab:green",
                        label="best candidate (validation)")
        ax.set_xticks(range(len(family_runs)))
        ax.set_xticklabels([f"#{r['id']} {r['optimizer']}\n{r['model']}, {r['status']}" for r in family_runs],
                           fontsize=7)
        ax.set_xlim(-0.6, max(len(family_runs), 3) - 0.4)
        ax.set_ylabel("objective")
        ax.set_title(f"{family}: {len(by_family[family])} runs", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        if unique:
            ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.suptitle("Optimization history per family")
    return _save(fig, path)
