"""The optimizers by name (``--optimizer``, ``PROMPTLOOP_OPTIMIZERS``)."""

from __future__ import annotations

from types import ModuleType

from . import demo_search, gepa_search, mipro_search, prune_search, rule_search

OPTIMIZERS: dict[str, ModuleType] = {
    m.NAME: m for m in (demo_search, gepa_search, mipro_search, prune_search, rule_search)}


def get_optimizer(name: str) -> ModuleType:
    """The optimizer module called ``name`` (it has ``propose(ctx, history)``); ``ValueError`` listing the known ones."""
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(sorted(OPTIMIZERS))}") from None


def prepare_options(name: str, family: str, options: dict | None) -> dict:
    """The ``optimizer_options`` a new run stores: checked, with defaults a resume must not lose filled in.

    ``ValueError`` (one sentence) when the optimizer cannot run on ``family`` with them, so a run that
    could not propose anything is never created."""
    module = get_optimizer(name)
    options = dict(options or {})
    return module.prepare(family, options) if hasattr(module, "prepare") else options
