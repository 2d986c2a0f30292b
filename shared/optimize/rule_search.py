"""Rule search: candidates are the parent with rules people wrote added to its task guidance.

A 1.5B proposal model restates the instruction it is shown instead of writing new rules (README,
"Optimization"), yet the failures of small extraction models are known: titles, pronouns and common
nouns taken as entities, names with words around them, relations the text does not state, a row
repeated until the token limit. This optimizer takes a bank of such rules (``optimizer_options``
``rules``; the extraction families have ``EXTRACTION_RULES`` by default) and measures which of them
this model follows to a better score on the deployment's own examples. People write the rules; the
search decides which, if any, are kept.

Trials 1..n each add one rule to the parent's task guidance (after any guidance it already has);
trial n+1 adds every rule whose own trial beat the parent (when two or more did), and the trial after
adds all of them (when that is a different set). No LM proposes anything, and proposals depend only on
the history, so a resumed run proposes the same candidates. The demonstrations stay the parent's.
"""

from __future__ import annotations

from .base import Proposal, RunContext
from .demos import demo_fields
from .promptset import components, guidance_of, guidance_placement, with_guidance

NAME = "rules"
#: ``candidates`` caps the trials; by default every set is tried (n singles, the winners, all).
DEFAULTS = {"rules": None, "candidates": None}

#: Generic rules against the failures named above; none of them names a dataset's labels.
EXTRACTION_RULES = [
    "Entities are specific things the text names: people, organizations, places and other proper names. "
    "Do not extract common nouns, lowercase phrases, pronouns, titles on their own, numbers or dates.",
    "Write each entity name exactly as it appears in the text, with no words added before or after it.",
    "Output a relation only when the text itself states how the two entities are related; never relate "
    "two names only because they appear in the same sentence.",
    "Write each row once and never repeat a row; after the last row, output the completion delimiter and stop.",
]
BANKS = {"entity_extraction": EXTRACTION_RULES, "relationship_extraction": EXTRACTION_RULES}


def bank(family: str, options: dict) -> list[str]:
    """The rules a run searches over: ``options["rules"]``, else the family's bank (runs made before
    ``prepare`` stored it). Rules are literal text: braces in them reach the model as they are."""
    rules = options.get("rules")
    if rules is None:
        rules = BANKS.get(family)
        if rules is None:
            raise ValueError(f"the rules optimizer has no rules for {family}: give them with --rules-file FILE "
                             f"(one rule a line)")
    if not isinstance(rules, list) or not rules or not all(isinstance(r, str) and r.strip() for r in rules):
        raise ValueError("the rules optimizer's rules must be a non-empty list of non-empty strings")
    return [" ".join(r.split()) for r in rules]


def prepare(family: str, options: dict) -> dict:
    """A new run's options with its bank written out, so a resume proposes from the same rules even if
    the default bank has changed since."""
    return {**options, "rules": bank(family, options), "guidance_at": "header"}


def chosen_sets(rules: list[str], history: list[dict]) -> list[tuple[int, ...]]:
    """The rule sets of trials 1, 2, ... that ``history`` (trial 0 = the parent) lets us know so far."""
    sets = [(k,) for k in range(len(rules))]
    singles_done = len(history) > len(rules)
    if not singles_done or not history:
        return sets
    parent = history[0]["score"]
    winners = tuple(k for k in range(len(rules)) if history[k + 1]["score"] > parent
                    and "refused" not in history[k + 1]["config"])
    if len(winners) >= 2:
        sets.append(winners)
    everything = tuple(range(len(rules)))
    if len(rules) >= 2 and everything not in sets:
        sets.append(everything)
    return sets


def propose(ctx: RunContext, history: list[dict]) -> Proposal | None:
    """Trial ``len(history)``: the parent's guidance plus the trial's rules (those not in it already)."""
    cap = ctx.options.get("candidates") or DEFAULTS["candidates"]
    rules = bank(ctx.family, ctx.options)
    trial = len(history)
    sets = chosen_sets(rules, history)
    if (cap is not None and trial > cap) or trial > len(sets):
        return None
    pick = sets[trial - 1]
    guidance = guidance_of(ctx.family, ctx.parent)
    added = [rules[k] for k in pick if rules[k] not in guidance]
    text = " ".join([guidance] + added).strip()
    demos = [d for d in (demo_fields(t) for t in components(ctx.family, ctx.parent)["demos"] or []) if d]
    return Proposal(template=with_guidance(ctx.family, ctx.parent, text, guidance_placement(ctx.options)), demos=demos,
                    config={"kind": "rules", "rules": list(pick), "text": [rules[k] for k in pick]})
