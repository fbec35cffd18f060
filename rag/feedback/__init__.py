"""Answer feedback: thumbs up/down on answers, kept durably for evaluation (``rag.feedback.store``)."""

from rag.feedback.store import (
    Feedback,
    FeedbackFull,
    FeedbackRecord,
    FeedbackSource,
    FeedbackStore,
    Rating,
    feedback_store,
)

__all__ = [
    "FeedbackFull",
    "Feedback",
    "FeedbackRecord",
    "FeedbackSource",
    "FeedbackStore",
    "Rating",
    "feedback_store",
]
