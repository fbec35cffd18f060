"""Who may see what: principals and roles (``principal``), the access a document carries
(``acl``), and the one Qdrant filter built from a principal (``scope``). Knows nothing of
HTTP: the API turns a request into a ``Principal``; ingestion stamps an ``AccessList``."""

from rag.access.acl import AccessError, AccessList
from rag.access.principal import Action, Principal, Role
from rag.access.scope import ReadScope

__all__ = ["AccessError", "AccessList", "Action", "Principal", "ReadScope", "Role"]
