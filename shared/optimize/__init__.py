"""Family optimization: DSPy optimizers that produce LightRAG-ready prompt variants (no Celery here)."""
