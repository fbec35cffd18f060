"""The Qdrant calls the store makes, as a protocol: the seam between the store and engines.

Satisfied by ``qdrant_client.QdrantClient`` (a server, or its pure-Python local mode) and by
``rag.store.edge.EdgeClient`` (Qdrant's Rust engine in-process). Only a server groups
natively (``query_points_groups``); the store checks ``grouping`` before using it.
"""

from __future__ import annotations

from typing import Any, Protocol

from qdrant_client import models as qm


class QdrantAPI(Protocol):
    def collection_exists(self, collection_name: str) -> bool: ...

    def create_collection(
        self,
        collection_name: str,
        vectors_config: Any = ...,
        sparse_vectors_config: Any = ...,
        **kwargs: Any,
    ) -> Any: ...

    def delete_collection(self, collection_name: str, **kwargs: Any) -> Any: ...

    def get_collection(self, collection_name: str) -> Any: ...

    def create_payload_index(
        self, collection_name: str, field_name: str, field_schema: Any = ..., **kwargs: Any
    ) -> Any: ...

    def upsert(self, collection_name: str, points: Any, wait: bool = ..., **kwargs: Any) -> Any: ...

    def delete(
        self, collection_name: str, points_selector: Any, wait: bool = ..., **kwargs: Any
    ) -> Any: ...

    def set_payload(
        self, collection_name: str, payload: dict[str, Any], points: Any, **kwargs: Any
    ) -> Any: ...

    def retrieve(
        self,
        collection_name: str,
        ids: Any,
        with_payload: Any = ...,
        with_vectors: Any = ...,
        **kwargs: Any,
    ) -> list[Any]: ...

    def scroll(
        self,
        collection_name: str,
        scroll_filter: qm.Filter | None = ...,
        limit: int = ...,
        offset: Any = ...,
        with_payload: Any = ...,
        with_vectors: Any = ...,
        **kwargs: Any,
    ) -> tuple[list[Any], Any]: ...

    def count(
        self,
        collection_name: str,
        count_filter: qm.Filter | None = ...,
        exact: bool = ...,
        **kwargs: Any,
    ) -> Any: ...

    def query_points(
        self,
        collection_name: str,
        query: Any = ...,
        using: str | None = ...,
        prefetch: Any = ...,
        query_filter: qm.Filter | None = ...,
        limit: int = ...,
        with_payload: Any = ...,
        **kwargs: Any,
    ) -> Any: ...

    def query_points_groups(
        self,
        collection_name: str,
        group_by: str,
        query: Any = ...,
        using: str | None = ...,
        prefetch: Any = ...,
        query_filter: qm.Filter | None = ...,
        limit: int = ...,
        group_size: int = ...,
        with_payload: Any = ...,
        **kwargs: Any,
    ) -> Any:
        """A server only (``grouping`` says whether the engine has it)."""
        ...

    def close(self, **kwargs: Any) -> None: ...
