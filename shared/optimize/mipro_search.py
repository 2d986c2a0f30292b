"""MIPROv2 over a family's LightRAG prompt: proposed task guidance x labelled demonstrations, chosen by TPE.

MIPROv2's three steps, each with DSPy's (or Optuna's) own part:

1. demonstration candidates: seeded sets of labelled demos from demo search's pool, rendered into
   LightRAG's examples (set 0 adds none; families without gold extraction labels only have set 0);
2. instruction candidates: DSPy's ``GroundedProposer`` (a summary of the search examples, a
   description of the program, a random prompting tip, one demo set shown as task demos) asks the
   run's proposal model for instructions; candidate 0 is always the seed (the parent's guidance, else
   the family's DSPy signature instructions), so a proposer that answers nothing usable still leaves
   a search over demos;
3. Optuna's TPE sampler over (instruction, demo set): each trial renders the instruction as the
   prompt's task-guidance section (``with_guidance``) and is a full, checkpointed evaluation on the
   search set. Proposals and trials depend only on the seed and the LM cache, so a resumed run replays
   them at no cost and continues where it stopped.
"""

from __future__ import annotations

import logging
import random
import warnings

from ..evaluation import load_examples
from ..families import get_family
from ..lm import LMError
from . import demo_search
from .base import RunContext
from .demos import demo_record, extraction_demo, extraction_rows
from .gepa_search import seed_text
from .promptset import InvalidCandidate, components, guidance_placement, rebuild, with_guidance
from .scoring import objective
from .tools import SearchTools

NAME = "mipro"
#: It asks the run's proposer model (``tools.complete``), so a resume checks that model too.
USES_PROPOSER = True
#: num_instructions and num_demo_sets count candidate 0 (the seed, no added demos), as MIPROv2's do.
#: TPE samples at random for its first ``startup_trials`` trials; Optuna's default of 10 would make a
#: 10-trial run a random search.
DEFAULTS = {"num_instructions": 4, "num_demo_sets": 4, "num_trials": 10, "startup_trials": 4,
            "demo_counts": demo_search.DEFAULTS["demo_counts"], "view_data_batch_size": 10,
            "program_aware": True, "data_aware": True, "tip_aware": True, "fewshot_aware": True,
            "descriptions": demo_search.DEFAULTS["descriptions"]}
log = logging.getLogger(__name__)


class ProposalEngine:
    """DSPy's LM engine protocol (``complete(Request) -> Response``) over ``SearchTools.complete``.

    Every proposal call goes through promptloop's SQL cache and budget. DSPy catches broad exceptions
    in places (the data summary, the program description) and wraps the rest, so a budget stop, a
    cancel or a lost lease is remembered here, refused on every later call, and re-raised by the search
    (``raise_if_stopped``): it must end the search, never become a "failed proposal".
    """

    def __init__(self, tools: SearchTools):
        self.tools = tools
        self.stopped: Exception | None = None

    def complete(self, request):
        from dspy.lm15 import Message, Response, TextPart, Usage

        if self.stopped is not None:
            raise self.stopped
        try:
            text = self.tools.complete(_messages(request))
        except LMError:
            raise  # the proposal model failed: this proposal fails, the search goes on
        except Exception as exc:  # budget, cancel, lease, database: anything else ends the search
            self.stopped = exc
            raise
        return Response(id=None, model="promptloop-proposer", message=Message.assistant([TextPart(text)]),
                        finish_reason="stop", usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0))

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass

    def raise_if_stopped(self) -> None:
        if self.stopped is not None:
            raise self.stopped


def _messages(request) -> list[dict]:
    """A DSPy request as the chat messages promptloop's LMs (and their cache keys) take."""
    messages = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
        messages.append({"role": "system", "content": system})
    messages.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
    return messages


def proposal_lm(engine: ProposalEngine):
    """The run's proposal model as a ``dspy.LM`` (what ``GroundedProposer`` takes as its prompt model)."""
    import dspy

    # No DSPy cache (promptloop's SQL cache answers repeats) and no retries (each would count as a call).
    # The proposer's temperature is ignored: promptloop's LMs answer at temperature 0, so the seed's
    # tips and demo sets, not sampling, make the proposals differ.
    return dspy.LM("promptloop/proposer", engine=engine, cache=False, num_retries=0)


def demo_sets(ctx: RunContext, opts: dict) -> list[list[tuple[int, str, dict]]]:
    """Set 0 adds no demos; set k is drawn as demo search draws its candidate k (same seed, same pool)."""
    if ctx.family not in demo_search.SUPPORTED:
        return [[]]
    pool = demo_search.demo_pool(ctx)
    if not pool:
        log.warning("mipro: no labelled %s examples to draw demos from; searching instructions only", ctx.family)
        return [[]]
    sets = [[]]
    for k in range(1, opts["num_demo_sets"]):
        rng = random.Random(f"{ctx.seed}:{k}")
        sets.append(rng.sample(pool, min(rng.choice(opts["demo_counts"]), len(pool))))
    return sets


def prepare(family: str, options: dict) -> dict:
    """A new run's options: its demos described as a new ``demos`` run's are (``demo_search.prepare``)."""
    return {**options, "descriptions": demo_search.prepare(family, options)["descriptions"], "guidance_at": "header"}


def _style(ctx: RunContext) -> str:
    return {**DEFAULTS, **ctx.options}["descriptions"]


def trainset(ctx: RunContext) -> list:
    """The run's search examples as ``dspy.Example``s of the family's signature (gold output where known)."""
    import dspy

    family = get_family(ctx.family)
    inputs = list(family.signature.input_fields)
    output = next(iter(family.signature.output_fields))
    loaded = load_examples(ctx.engine, ctx.train)
    examples = []
    for ref in ctx.train:
        _, text, reference = loaded.get((ref.source, ref.id), (None, "", None))
        fields = {k: v for k, v in family.inputs(text).items() if k in inputs}
        if ctx.family in demo_search.SUPPORTED and reference and "entities" in reference:
            sentence = family.inputs(text).get("input_text", "")
            fields[output] = "\n".join(extraction_rows(reference, sentence, _style(ctx)))
        examples.append(dspy.Example(**fields).with_inputs(*inputs))
    return examples


def _clean(text: str | None) -> str:
    """A proposal as one guidance section: blank lines would end the section early (``guidance_of``)."""
    return "\n".join(line.strip() for line in (text or "").splitlines() if line.strip())


def propose_instructions(ctx: RunContext, opts: dict, engine: ProposalEngine, sets: list) -> tuple[list[str], int]:
    """``[seed, proposal, ...]`` from DSPy's ``GroundedProposer``, and how many proposals failed.

    Proposal ``j`` is shown demo set ``j`` (MIPROv2 pairs them the same way) and a seeded random tip;
    one that fails (a small model answering outside DSPy's format) is logged and skipped.
    """
    import dspy
    from dspy.propose import GroundedProposer
    from dspy.propose.grounded_proposer import TIPS
    from dspy.utils.exceptions import DSPyError

    seed = seed_text(ctx)
    program = get_family(ctx.family).module()
    program.signature = program.signature.with_instructions(seed)  # the proposer's "basic instruction"
    rng = random.Random(ctx.seed)
    proposer = GroundedProposer(
        prompt_model=proposal_lm(engine), program=program, trainset=trainset(ctx),
        view_data_batch_size=opts["view_data_batch_size"], use_dataset_summary=opts["data_aware"],
        program_aware=opts["program_aware"], use_task_demos=opts["fewshot_aware"], use_tip=opts["tip_aware"],
        set_tip_randomly=opts["tip_aware"], use_instruct_history=False, set_history_randomly=False, rng=rng)
    engine.raise_if_stopped()
    demo_candidates = None
    if opts["fewshot_aware"] and len(sets) > 1:
        # "augmented" marks a demo the proposer may show (MIPROv2 marks its bootstrapped ones so).
        demo_candidates = {0: [[dspy.Example(**demo_record(text, ref, _style(ctx)), augmented=True) for _, text, ref in demos]
                               for demos in sets]}
    candidates, failures = [seed], 0
    for j in range(1, opts["num_instructions"]):
        tip = TIPS[rng.choice(list(TIPS))] if opts["tip_aware"] else None
        proposer.use_tip = bool(tip)
        try:
            text = proposer.propose_instruction_for_predictor(
                program=program, predictor=program, pred_i=0, demo_candidates=demo_candidates,
                demo_set_i=j % len(sets), trial_logs={}, tip=tip)
        except DSPyError as exc:
            engine.raise_if_stopped()
            failures += 1
            log.warning("mipro: instruction proposal %d failed: %s", j, str(exc).splitlines()[0][:200])
            continue
        engine.raise_if_stopped()
        text = _clean(text)
        if not text:
            failures += 1
            log.warning("mipro: instruction proposal %d was empty", j)
        elif text not in candidates:
            candidates.append(text)
    return candidates, failures


def render(ctx: RunContext, instruction: str, demos: list[tuple[int, str, dict]]):
    """The parent with ``demos`` appended to LightRAG's examples and ``instruction`` as its task guidance."""
    parent = ctx.parent
    if demos:
        base = components(ctx.family, parent)["demos"] or []
        parent = rebuild(ctx.family, parent,
                         demos=base + [extraction_demo(text, ref, _style(ctx)) for _, text, ref in demos])
    return with_guidance(ctx.family, parent, instruction, guidance_placement(ctx.options))


def _study(seed: int, opts: dict):
    """An Optuna study with MIPROv2's sampler: multivariate TPE, seeded."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as MIPROv2 does: no line per trial
    with warnings.catch_warnings():  # multivariate TPE is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=opts["startup_trials"])
    return optuna.create_study(direction="maximize", sampler=sampler)


def search(ctx: RunContext, tools: SearchTools) -> str:
    """Propose, then let TPE pick (instruction, demo set) pairs; every new pair is a checkpointed trial."""
    import optuna

    opts = {**DEFAULTS, **ctx.options}
    sets = demo_sets(ctx, opts)
    engine = ProposalEngine(tools)
    instructions, failures = propose_instructions(ctx, opts, engine, sets)
    log.info("mipro: %d instruction candidates (%d proposals failed), %d demo sets", len(instructions), failures,
             len(sets))
    scored: dict[tuple[int, int], float] = {}

    def evaluate(i: int, d: int) -> float:
        # TPE may suggest a pair again: it is the same prompt, so its score is reused, not re-recorded.
        if (i, d) not in scored:
            scored[(i, d)] = _score(ctx, tools, instructions[i], i, sets[d], d)
        return scored[(i, d)]

    distributions = {"instruction": optuna.distributions.CategoricalDistribution(tuple(range(len(instructions)))),
                     "demo_set": optuna.distributions.CategoricalDistribution(tuple(range(len(sets))))}
    study = _study(ctx.seed, opts)
    # MIPROv2 scores the default program first and gives it to the study as a finished trial.
    study.add_trial(optuna.trial.create_trial(params={"instruction": 0, "demo_set": 0}, distributions=distributions,
                                              value=evaluate(0, 0)))
    for _ in range(opts["num_trials"]):
        trial = study.ask(distributions)
        study.tell(trial, evaluate(trial.params["instruction"], trial.params["demo_set"]))
    return (f"search finished: {len(scored)} candidates from {len(instructions)} instructions "
            f"({failures} proposals failed) x {len(sets)} demo sets in {opts['num_trials']} TPE trials")


def _score(ctx: RunContext, tools: SearchTools, instruction: str, i: int, demos: list, d: int) -> float:
    """One (instruction, demo set) pair scored on the search set (a trial); its objective."""
    try:
        template = render(ctx, instruction, demos)
    except InvalidCandidate as exc:
        log.warning("mipro: instruction %d with demo set %d does not render: %s", i, d, exc)
        return -1.0
    config = {"kind": NAME, "instruction": i, "demo_set": d, "guidance": instruction,
              "demo_ids": [ident for ident, _, _ in demos], "demos": [demo_record(t, r, _style(ctx)) for _, t, r in demos]}
    return objective(tools.score(template, config=config), tools.weights)
