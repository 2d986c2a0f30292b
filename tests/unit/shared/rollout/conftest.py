"""A database with CoNLL04, the baselines active on model "m", and a better and a worse candidate."""

import pytest

from shared.evaluation import register_baselines
from shared.families import get_family
from shared.optimize.demos import extraction_demo
from shared.optimize.promptset import rebuild, with_guidance
from shared.optimize.variants import register_candidate

FAMILY = "entity_extraction"
DEMO_SENTENCES = [("John Wilkes Booth , who assassinated President Lincoln , was an actor .",
                   {"entities": [["John Wilkes Booth", "Peop"], ["President Lincoln", "Peop"]],
                    "relations": [["John Wilkes Booth", "President Lincoln", "Kill"]]}),
                  ("Mary Smith works for Acme Corp in Boston .",
                   {"entities": [["Mary Smith", "Peop"], ["Acme Corp", "Org"], ["Boston", "Loc"]],
                    "relations": [["Mary Smith", "Acme Corp", "Work_For"]]})]
DEMOS = [extraction_demo(text, ref, "grounded") for text, ref in DEMO_SENTENCES]
#: The same demos as runs before 2026-12-01 wrote them: every entity "X is a person named in the text."
FILLER_DEMOS = [extraction_demo(text, ref) for text, ref in DEMO_SENTENCES]


def add_candidate(engine, template, parent_id=1) -> int:
    with engine.begin() as conn:
        return register_candidate(conn, FAMILY, "m", template, parent_id)


@pytest.fixture
def rollout_env(env):
    """(settings, engine, ids): ids["baseline"], ids["better"] (two worked examples: the scripted model
    then answers with clean rows and the completion delimiter) and ids["same"] (a guidance section the
    scripted model ignores: it answers exactly as for the baseline)."""
    settings, engine = env
    register_baselines(engine, ["m"], [FAMILY])
    base = get_family(FAMILY).baseline()
    from sqlalchemy import select

    from shared.models import PromptVariant

    with engine.connect() as conn:
        baseline = conn.execute(select(PromptVariant.id).where(PromptVariant.family == FAMILY)).scalar_one()
    ids = {"baseline": baseline,
           "better": add_candidate(engine, rebuild(FAMILY, base, demos=DEMOS), baseline),
           "same": add_candidate(engine, with_guidance(FAMILY, base, "Be careful."), baseline)}
    return settings, engine, ids
