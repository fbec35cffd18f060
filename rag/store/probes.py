"""The check that an embedder produces the vectors a collection was built with.

The collection's metadata names the model, but a server can serve another checkpoint under
the same name (or a quantized one). So the first embedder to use a collection stores its
vectors for a few fixed probe texts in ``<collection>_probes``; every later one, in-process
or a server, must reproduce them to ``RAG_EMBEDDING_MIN_COSINE`` (in-process int8 against a
server running the dequantized weights: about 0.998), else it is refused before it writes.
"""

from __future__ import annotations

import uuid

import numpy as np
from qdrant_client import models as qm

from rag.embedding.protocol import Embedder
from rag.store.qdrant_store import QdrantStore

PROBE_TEXTS = (
    "The reactor's cooling loop circulates a glycol mix through heat exchangers on the roof.",
    "Quarterly revenue grew eight percent, driven by subscriptions in the Nordic region.",
    "To reset the router, hold the recessed button for ten seconds until the light blinks.",
)
_NAMESPACE = uuid.UUID("6f1c7d2e-3a7b-4b8e-9d35-5d1f2a9c0b11")


class EmbeddingMismatch(RuntimeError):
    """The embedder's vectors differ from the collection's."""


def verify_embedder(store: QdrantStore, embedder: Embedder, min_cosine: float) -> float:
    """The lowest cosine between this embedder's probe vectors and the stored ones (1.0 when
    none were stored: these become the reference). Raises ``EmbeddingMismatch``."""
    vectors = embedder.embed_passages(list(PROBE_TEXTS))
    name = store.names.probes
    ids = [str(uuid.uuid5(_NAMESPACE, text)) for text in PROBE_TEXTS]
    with store.session() as client:
        if not client.collection_exists(name):
            client.create_collection(name, vectors_config={})
        stored = {str(p.id): p.payload for p in client.retrieve(name, ids, with_payload=True)}
        if len(stored) < len(ids):
            client.upsert(
                name,
                [
                    qm.PointStruct(
                        id=pid,
                        vector={},
                        payload={
                            "text": text,
                            "model": embedder.name,
                            "vector": [float(x) for x in vector],
                        },
                    )
                    for pid, text, vector in zip(ids, PROBE_TEXTS, vectors)
                ],
                wait=True,
            )
            return 1.0
    reference = np.asarray([stored[pid]["vector"] for pid in ids], dtype=np.float32)
    if reference.shape != vectors.shape:
        raise EmbeddingMismatch(
            f"the embedder gives {vectors.shape[1]}-dimensional vectors, the collection "
            f"'{store.settings.collection}' holds {reference.shape[1]}-dimensional ones"
        )
    reference /= np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    mine = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cosine = float(np.min(np.sum(reference * mine, axis=1)))
    if cosine < min_cosine:
        where = getattr(embedder, "url", "in-process")
        raise EmbeddingMismatch(
            f"the embedder at {where} ({embedder.name}) does not reproduce the vectors the "
            f"collection '{store.settings.collection}' was built with: cosine {cosine:.4f} < "
            f"{min_cosine} on the probe texts. Serve the same model (and weights), or "
            "re-ingest into a new RAG_COLLECTION"
        )
    return cosine
