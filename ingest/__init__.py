"""Ingestion: walk folders, parse with unstructured, chunk, embed, store in Qdrant."""
