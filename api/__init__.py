"""The HTTP face of the service (FastAPI): routes per resource, over ``rag``."""
