"""Format compliance as LightRAG's own parser reads an extraction output."""

from shared.metrics import parse_extraction

D = "<|#|>"
GOOD = "\n".join([
    f"entity{D}Marie Curie{D}person{D}A physicist.",
    f"entity{D}Paris{D}location{D}A city.",
    f"relation{D}Marie Curie{D}Paris{D}employment{D}She worked in Paris.",
    "<|COMPLETE|>",
])


def test_a_well_formed_output_is_compliant():
    parsed = parse_extraction(GOOD)
    assert parsed.compliant and parsed.record_validity == 1.0
    assert sorted(n for n, _ in parsed.entities) == ["Marie Curie", "Paris"]
    assert parsed.relations == [("Marie Curie", "Paris")]
    assert parsed.descriptions == {"Marie Curie": "A physicist.", "Paris": "A city."}


def test_missing_completion_delimiter_is_not_compliant():
    parsed = parse_extraction(GOOD.replace("<|COMPLETE|>", ""))
    assert not parsed.compliant and len(parsed.entities) == 2


def test_wrong_field_counts_are_records_lightrag_drops():
    # The 1.5B model's failure from LOCAL_LM.md: a relation row repeating a field until the token limit.
    runaway = f"relation{D}Marie Curie{D}Paris{D}location{D}location{D}location{D}location"
    parsed = parse_extraction("\n".join([GOOD.splitlines()[0], f"entity{D}Paris{D}location", runaway,
                                         "<|COMPLETE|>"]))
    assert (parsed.records, parsed.accepted) == (3, 1)
    assert not parsed.compliant and parsed.record_validity == 1 / 3


def test_echoed_input_is_not_compliant():
    # The 0.5B model's failure: it echoed the input text.
    parsed = parse_extraction("Marie Curie worked at the University of Paris.")
    assert parsed.entities == [] and not parsed.compliant
