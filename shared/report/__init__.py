"""``promptloop report``: PNG plots of metrics, rollouts and optimizations, and one self-contained HTML page.

``write_report(engine, out_dir)`` reads the database (``data``), draws what there is (``plots``) and
writes ``report.html`` (``page``) beside the PNGs; an empty database gives a page that says so.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine


@dataclass
class Report:
    html: Path
    pngs: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _marks(rollouts: list[dict], family: str | None) -> list[tuple[datetime, str, str]]:
    """The family's deployments, promotions to 100% and rollbacks: vertical lines on its metric plot."""
    out = []
    for r in rollouts:
        for t in r["transitions"] if r["family"] == family else ():
            if t["action"] == "deploy":
                out.append((t["at"], f"#{r['id']} {r['candidate']} deployed", "tab:blue"))
            elif t["action"] == "rollback":
                out.append((t["at"], f"#{r['id']} rolled back", "tab:red"))
            elif t["action"] == "promote" and t["to_status"] == "promoted":
                out.append((t["at"], f"#{r['id']} promoted", "tab:green"))
    return out


def _by_family(series: dict) -> list[tuple[str | None, dict]]:
    """``series`` split per family, the most called first."""
    parts: dict[str | None, list[dict]] = {}
    for r in series["rows"]:
        parts.setdefault(r["family"], []).append(r)
    ranked = sorted(parts, key=lambda f: (-sum(r["n"] for r in parts[f]), str(f)))
    return [(f, {**series, "rows": parts[f]}) for f in ranked]


def _slug(family: str | None, taken: set[str]) -> str:
    base = "metrics-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", family) if family else "no_family")
    name, k = base, 1
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    taken.add(name)
    return name


def _write(path: Path, text: str) -> None:
    """Replace ``path`` at once: a browser reloading mid-write never sees half a page."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(engine: Engine, out_dir: Path, *, hours: float | None = None,
                 now: datetime | None = None) -> Report:
    """Write the PNGs and ``report.html`` into ``out_dir``; metric events from the last ``hours`` (all: None)."""
    import time

    from . import data, page, plots

    now = now or datetime.now(timezone.utc)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    since = now - timedelta(hours=hours) if hours is not None else None
    timings: dict[str, float] = {}
    t = time.perf_counter()
    series = data.metric_series(engine, since)
    variants = data.variant_summary(engine, series)
    rollouts = data.rollouts(engine)
    runs = data.optimizations(engine)
    alerts = data.alerts(engine)
    timings["queries"] = time.perf_counter() - t
    t = time.perf_counter()
    pngs: dict[str, Path | None] = {}
    families, taken = _by_family(series), set()
    for family, part in families[:plots.MAX_FAMILIES]:
        name = _slug(family, taken)
        pngs[name] = plots.metrics_png(part, out_dir / f"{name}.png", _marks(rollouts, family),
                                       family or "events without a family")
    pngs["rollouts"] = plots.rollouts_png(rollouts, out_dir / "rollouts.png", now)
    pngs["optimizations"] = plots.optimizations_png(runs, out_dir / "optimizations.png")
    for stale in out_dir.glob("*.png"):  # pictures of an earlier report this one has no data for
        if pngs.get(stale.stem) is None:
            stale.unlink(missing_ok=True)
    timings["plots"] = time.perf_counter() - t
    window = f"last {hours:g} hours" if hours is not None else "all time"
    html = page.render(generated_at=now, database=engine.url.render_as_string(hide_password=True), window=window,
                       series=series, variants=variants, rollouts=rollouts, runs=runs, alerts=alerts, pngs=pngs,
                       hidden_families=len(families) - plots.MAX_FAMILIES)
    _write(out_dir / "report.html", html)
    counts = {"metric_events": sum(r["n"] for r in series["rows"]), "rollouts": len(rollouts),
              "optimization_runs": len(runs), "alerts": len(alerts)}
    return Report(out_dir / "report.html", {k: v for k, v in pngs.items() if v}, counts, timings)
