"""``promptloop datasets``: the public labelled datasets, and a user's own examples (JSONL)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

datasets_app = typer.Typer(help="Labeled datasets as evaluation sets.", no_args_is_help=True)


@datasets_app.command("import")
def import_(path: Optional[Path] = typer.Option(None, help="Folder holding conll04/, summarization/, qa/ "
                                                "(default: PROMPTLOOP_DATASETS_DIR, else ../shared/datasets)."),
            name: Optional[list[str]] = typer.Option(None, "--name", help="Only these datasets.")) -> None:
    """Load the labeled datasets as evaluation sets (the files are read where they are, never copied)."""
    from cli.main import console, settings
    from cli.runtime import require_migrated
    from shared.datasets import import_datasets
    from shared.db import get_engine

    s = settings()
    require_migrated(console, s)
    folder = path or s.datasets_dir
    try:
        added = import_datasets(get_engine(s), folder, name or None)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    for dataset, count in added.items():
        console.print(f"{dataset}: {count} examples added")


@datasets_app.command("import-jsonl")
def import_jsonl(file: Path = typer.Argument(..., help="One JSON object per line."),
                 family: str = typer.Option(..., "--family", help="The prompt family the examples are for."),
                 name: Optional[str] = typer.Option(None, "--name", help="Dataset name for `evaluate --dataset` "
                                                    "(default: the file's name without .jsonl).")) -> None:
    """Import your own labelled examples: each line holds the family's input fields and an optional reference.

    Fields per family: entity_extraction, relationship_extraction: input_text; document_analysis:
    document; summarization: description_list (description_type, description_name optional);
    query_processing, question_reformulation: query; answer_generation, context_compression: query,
    context_data. "reference" is text (a summary, an answer, LightRAG extraction rows) or an object
    such as {"entities": [["Ada Lovelace", "person"]]} or {"answers": ["Paris"]}; "id" is optional.
    Every line is checked first; nothing is stored unless all are valid. Importing again adds only new lines.
    """
    from cli.checks import unknown_family
    from cli.main import console, settings
    from cli.runtime import require_migrated

    problem = unknown_family([family])
    if problem:
        console.print(f"[red]{problem}[/red]", highlight=False)
        raise typer.Exit(2)
    s = settings()
    require_migrated(console, s)
    from shared.datasets_jsonl import import_jsonl as load
    from shared.db import get_engine

    dataset = name or file.name.removesuffix(".jsonl")
    try:
        read, added = load(get_engine(s), file, family, dataset)
    except (FileNotFoundError, ValueError) as exc:
        console.print(str(exc), style="red", highlight=False, markup=False)
        raise typer.Exit(2) from None
    console.print(f"{dataset}: {read} {family} examples read, {added} added "
                  f"(evaluate them with `promptloop evaluate --dataset {dataset} --family {family}`)", highlight=False)
