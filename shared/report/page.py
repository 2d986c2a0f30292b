"""The report's one self-contained HTML page: the PNGs inlined as base64 data URIs, the tables, no links out."""

from __future__ import annotations

import base64
from datetime import datetime
from html import escape
from pathlib import Path

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.85em}th,td{border:1px solid #ccc;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd}
.note{background:#fff8e0;border-left:4px solid #e0b000;padding:.6em 1em}.muted{color:#777}
.promoted{color:#18794e;font-weight:bold}.rolled_back{color:#c62828;font-weight:bold}"""


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(headers: list[str], rows: list[list], css: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr" + (f' class="{escape(css[i])}"' if css and css[i] else "") + ">"
                   + "".join(f"<td>{escape(_fmt(v))}</td>" for v in row) + "</tr>" for i, row in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def image(path: Path | None, alt: str, missing: str) -> str:
    """The PNG inlined, or a note saying why there is none."""
    if path is None:
        return f'<p class="note">{escape(missing)}</p>'
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<p><img alt="{escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def variants_section(variants: list[dict]) -> str:
    if not variants:
        return '<p class="muted">No prompt variants registered yet (promptloop init registers the baselines).</p>'
    return table(["id", "family", "model", "variant", "status", "calls", "quality", "latency ms", "success"],
                 [[v["id"], v["family"], v["model"], v["name"], v["status"], v["calls"], v["quality"],
                   None if v["latency_ms"] is None else f"{v['latency_ms']:.0f}", _pct(v["success"])]
                  for v in variants])


def rollouts_section(rollouts: list[dict]) -> str:
    if not rollouts:
        return ""
    parts = [table(["id", "family", "model", "candidate", "over", "status", "share", "started", "finished"],
                   [[r["id"], r["family"], r["model"], r["candidate"], r["incumbent"], r["status"],
                     _pct(r["percentage"]), (r["transitions"][0]["at"] if r["transitions"] else r["created_at"]),
                     r["finished_at"]] for r in rollouts],
                   [r["status"] for r in rollouts])]
    for r in rollouts:
        parts.append(f"<h3>Rollout {r['id']}: {escape(r['candidate'])} over {escape(r['incumbent'])} "
                     f"({escape(r['family'])} x {escape(r['model'])}) &mdash; "
                     f'<span class="{escape(r["status"])}">{escape(r["status"])}</span></h3>')
        parts.append(table(["version", "at", "action", "from", "to", "status", "actor", "reason"],
                           [[t["version"], t["at"], t["action"], _pct(t["from_percentage"]), _pct(t["to_percentage"]),
                             t["to_status"], t["actor"], t["reason"]] for t in r["transitions"]]))
    return "".join(parts)


def optimizations_section(runs: list[dict]) -> str:
    if not runs:
        return ""
    return table(["run", "family", "model", "optimizer", "status", "trials", "best trial", "parent (val)",
                  "candidate (val)", "gain", "candidate", "LM calls", "seconds", "started", "stop reason"],
                 [[r["id"], r["family"], r["model"], r["optimizer"], r["status"], len(r["trial_scores"]),
                   max(r["trial_scores"], default=None), r["parent_objective"], r["candidate_objective"],
                   None if r["parent_objective"] is None or r["candidate_objective"] is None
                   else f"{r['candidate_objective'] - r['parent_objective']:+.3f}",
                   r["candidate"], r["lm_calls"], None if r["seconds"] is None else f"{r['seconds']:.1f}",
                   r["created_at"], r["stop_reason"]] for r in reversed(runs)])


def alerts_section(alerts: list[dict]) -> str:
    if not alerts:
        return ""
    return "<h2>Alerts</h2>" + table(
        ["id", "rule", "scope", "status", "value", "threshold", "fired", "resolved", "message"],
        [[a["id"], a["rule"], a["scope"], a["status"], a["value"], a["threshold"], a["fired_at"], a["resolved_at"],
          a["message"]] for a in alerts])


def render(*, generated_at: datetime, database: str, window: str, series: dict, variants: list[dict],
           rollouts: list[dict], runs: list[dict], alerts: list[dict], pngs: dict[str, Path | None],
           hidden_families: int = 0) -> str:
    n_events = sum(r["n"] for r in series["rows"])
    summary = (f"{n_events} metric events ({window}), {len(rollouts)} rollouts, {len(runs)} optimization runs, "
               f"{len(alerts)} alerts shown")
    empty = not (n_events or rollouts or runs or alerts)
    return "".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>promptloop report</title>',
        f"<style>{CSS}</style></head><body><h1>promptloop report</h1>",
        f'<p class="muted">Generated {escape(_fmt(generated_at))} from {escape(database)}. {escape(summary)}.</p>',
        ('<p class="note">Nothing has happened yet: no metric events, rollouts, optimizations or alerts. '
         "Send traffic through the client (or run <code>promptloop demo</code>) and generate the report again.</p>"
         if empty else ""),
        "<h2>Quality and latency per variant</h2>",
        "".join(image(path, f"{name}: quality and latency per variant over time", "")
                for name, path in pngs.items() if name.startswith("metrics-") and path)
        or image(None, "", f"No metric events yet ({window}): nothing to plot."),
        (f'<p class="muted">{hidden_families} less called families not plotted (see the table).</p>'
         if hidden_families > 0 else ""),
        "<h3>Variants</h3>", variants_section(variants),
        "<h2>Rollouts</h2>",
        image(pngs.get("rollouts"), "rollout timeline", "No rollouts yet."),
        rollouts_section(rollouts),
        "<h2>Optimizations</h2>",
        image(pngs.get("optimizations"), "optimization history per family", "No optimization runs yet."),
        optimizations_section(runs),
        alerts_section(alerts),
        "</body></html>\n"])
