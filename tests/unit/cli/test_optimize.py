"""``promptloop optimize`` as a person runs it (subprocess, embedded database): improving a named variant."""

from tests.unit.cli.test_rollout import add_better_candidate


def test_a_run_improves_the_variant_named_by_parent(cli):
    run, data_dir = cli
    demos = add_better_candidate(data_dir)
    code, out = run("optimize", "--family", "entity_extraction", "--model", "m", "--dataset", "conll04",
                    "--train", "3", "--val", "3", "--optimizer", "prune", "--parent", "entity_extraction/m/DSPY_A")
    assert code == 0 and "optimization run 1" in out, out
    from shared.db import make_engine
    from shared.optimize.runs import load_run

    engine = make_engine(f"sqlite:///{data_dir / 'promptloop.db'}")
    assert (load_run(engine, 1).parent_id, load_run(engine, 1).optimizer) == (demos, "prune")
    engine.dispose()


def test_a_parent_that_does_not_fit_gets_one_sentence(cli):
    run, data_dir = cli
    add_better_candidate(data_dir)
    args = ("optimize", "--model", "m", "--optimizer", "prune", "--dataset", "conll04")
    code, out = run(*args, "--family", "entity_extraction", "--parent", "entity_extraction/m/DSPY_Z")
    assert code != 0 and "no variant 'entity_extraction/m/DSPY_Z'" in out and "Traceback" not in out, out
    code, out = run(*args, "--family", "summarization", "--parent", "entity_extraction/m/DSPY_A")
    assert code != 0 and "is entity_extraction on m, not summarization on m" in out and "Traceback" not in out, out


def test_the_rules_optimizer_takes_its_bank_from_a_file(cli, tmp_path):
    run, data_dir = cli
    rules = tmp_path / "rules.txt"
    rules.write_text("End the answer with the completion delimiter.\n\n  Extract names only.  \n")
    args = ("optimize", "--family", "entity_extraction", "--model", "m", "--dataset", "conll04", "--train", "3",
            "--val", "3")
    code, out = run(*args, "--optimizer", "rules", "--rules-file", str(rules))
    assert code == 0 and "optimization run 1" in out, out
    import json

    from shared.db import make_engine
    from shared.optimize.runs import load_run, load_trials

    engine = make_engine(f"sqlite:///{data_dir / 'promptloop.db'}")
    assert json.loads(load_run(engine, 1).settings)["optimizer_options"] == {
        "rules": ["End the answer with the completion delimiter.", "Extract names only."], "guidance_at": "header"}
    assert [t["config"].get("rules") for t in load_trials(engine, 1)] == [None, [0], [1], [0, 1]]
    engine.dispose()
    rules.write_text("\n")
    code, out = run(*args, "--optimizer", "rules", "--rules-file", str(rules))
    assert code != 0 and "no rules: write one rule a line" in out and "Traceback" not in out, out
    code, out = run(*args, "--optimizer", "prune", "--rules-file", str(rules))
    assert code != 0 and "for the rules optimizer, not prune: add --optimizer rules" in out, out
    code, out = run(*args, "--optimizer", "rules", "--rules-file", str(tmp_path / "no[/b]pe.txt"))
    assert code != 0 and "could not read the rules file" in out and "no[/b]pe.txt" in out, out
    assert "Traceback" not in out, out
    code, out = run("optimize", "--family", "summarization", "--model", "m", "--optimizer", "rules")
    assert code != 0 and "no rules for summarization: give them with --rules-file FILE" in out, out
    assert "Traceback" not in out, out
