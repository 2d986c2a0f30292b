"""Quality metrics, plain functions: extraction, LightRAG's output format, ROUGE, QA, readability."""

from .extraction import description_grounding, entity_prf, hallucination_rate, normalize_name, relation_prf
from .lightrag_format import ParsedExtraction, parse_extraction
from .qa import exact_match, token_f1
from .readability import flesch_reading_ease
from .rouge import rouge

__all__ = ["entity_prf", "relation_prf", "hallucination_rate", "description_grounding", "normalize_name", "ParsedExtraction",
           "parse_extraction", "exact_match", "token_f1", "flesch_reading_ease", "rouge"]
