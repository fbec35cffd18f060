"""Core of the RAG service: settings, parsing-free chunking, tokens, embeddings, store, budget.

Nothing in this package knows about HTTP or command lines; ``api`` and ``ingest`` build on it.
"""
