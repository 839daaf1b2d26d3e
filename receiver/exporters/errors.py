"""How a push fails: the classification the sending queue acts on (the Collector's consumererror).

* :class:`PermanentExportError` — sending the same data again cannot succeed (bad request,
  unauthenticated, unencodable data); its items are counted as failed;
* :class:`RequestTooLargeError` — a permanent error of *this request's size*: the backend's
  limit on one request (gRPC "message larger than max", HTTP 413) was exceeded.  Never retried
  unchanged: the sending queue splits the request in halves and sends those;
* :class:`RetryableExportError` — the backend is unavailable or throttling; the request is
  sent again after a backoff, no earlier than ``retry_after`` seconds if the backend said so.
"""

from __future__ import annotations


class ExportError(Exception):
    """A push failed; subclasses say whether sending the same request again may succeed."""


class PermanentExportError(ExportError):
    """The backend will never accept this request; do not retry."""


class RequestTooLargeError(PermanentExportError):
    """The backend refused the request for its size; smaller requests with the same items may pass."""


class RetryableExportError(ExportError):
    """A transient failure; ``retry_after`` is the backend's requested delay in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
