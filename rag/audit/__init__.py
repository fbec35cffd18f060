"""The audit trail: who read, ingested or deleted what (``rag.audit.log``)."""

from rag.audit.log import AuditLog, audit_log, question_fields

__all__ = ["AuditLog", "audit_log", "question_fields"]
