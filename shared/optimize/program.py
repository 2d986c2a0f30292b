"""A candidate as a DSPy program: the family's predictor with the candidate's instruction and demos,
saved as DSPy saves state (JSON, never pickle) with the library versions and LightRAG's PROMPTS values."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from ..families import get_family
from ..families.template import PromptTemplate


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def program_state(family: str, template: PromptTemplate, instruction: str, demos: list[dict]) -> dict:
    """``dspy.Predict(signature).dump_state()`` for the candidate, plus what is needed to rebuild it."""
    import dspy

    predictor = get_family(family).module()
    predictor.signature = predictor.signature.with_instructions(instruction)
    predictor.demos = [dspy.Example(**d) for d in demos]
    return {"program": predictor.dump_state(),
            "template": {"system": template.system, "user": template.user},
            "lightrag": template.lightrag,
            "metadata": {"dependency_versions": {"python": platform.python_version(), "dspy": _version("dspy"),
                                                 "lightrag-hku": _version("lightrag-hku")}}}
