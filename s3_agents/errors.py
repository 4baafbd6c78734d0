"""Exceptions raised by s3-agents.

Caller mistakes (a wrong argument type, an unknown option) raise the closest built-in
exception with the fix in the message. Failures of the world outside the caller's
control (a malformed corpus file, a retrieval server that does not answer) raise a
subclass of :class:`S3Error`, always chained with ``raise ... from err``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "S3Error",
    "DataError",
    "DataFileError",
    "CorpusFormatError",
    "IndexNotFoundError",
    "IndexFormatError",
    "BusyError",
    "NoGPUError",
    "RetrieverError",
    "RetrieverUnavailableError",
    "RetrieverRefusedError",
    "LLMClientError",
    "LLMUnavailableError",
    "ContextWindowError",
    "BatchError",
]


class S3Error(Exception):
    """Base class of every error that s3-agents raises on purpose."""


class DataError(S3Error, ValueError):
    """Data that cannot be used as given: an empty corpus, duplicate question ids, a question without its
    naive-RAG baseline in the cache."""


class DataFileError(DataError):
    """A data file (corpus, QA) with lines that are not what it should hold, or that cannot be read past a
    point (a damaged or mislabelled gzip stream).

    Attributes:
        path: The file.
        line_no: 1-based number of the line where reading stopped.
        reason: What is wrong.
    """

    def __init__(self, path: str | Path, line_no: int, reason: str, hint: str = "") -> None:
        self.path = str(path)
        self.line_no = line_no
        self.reason = reason
        super().__init__(f"{self.path}, line {line_no}: {reason}{hint}")


class CorpusFormatError(DataFileError):
    """A corpus line that is not a passage (same attributes as :class:`DataFileError`)."""

    def __init__(self, path: str | Path, line_no: int, reason: str) -> None:
        super().__init__(path, line_no, reason,
                         " (pass skip_bad_lines=True / --skip-bad-lines to skip such lines and count them)")


class IndexNotFoundError(S3Error, FileNotFoundError):
    """No complete index at the given path (never built, or every build was interrupted)."""


class IndexFormatError(S3Error, ValueError):
    """An index directory whose ``meta.json`` names another kind of index, or one this version does not know."""


class BusyError(S3Error, RuntimeError):
    """Another process holds the lock on a file this one must write (an index build, a results file)."""


class NoGPUError(S3Error, RuntimeError):
    """A GPU was asked for and this machine (or this install of FAISS / torch) has none."""


class RetrieverError(S3Error):
    """A retriever answered with an error, or with something that is not a result."""


class RetrieverUnavailableError(RetrieverError):
    """A remote retriever could not be reached after all retries.

    Attributes:
        url: The endpoint that was called.
    """

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(message)


class RetrieverRefusedError(RetrieverError):
    """A retrieval server refused a request with an HTTP 4xx (a wrong key, a request over its limits).

    Attributes:
        url: The endpoint that was called.
        status: The HTTP status.
        detail: The server's explanation.
    """

    def __init__(self, url: str, status: int, detail: str) -> None:
        self.url = url
        self.status = status
        self.detail = detail
        super().__init__(f"retrieval server at {url} answered HTTP {status}: {detail}")


class LLMClientError(S3Error):
    """An LLM endpoint refused a request or answered with something unusable.

    Attributes:
        url: The endpoint.
        model: The model asked for.
    """

    def __init__(self, message: str, *, url: str = "", model: str = "") -> None:
        self.url = url
        self.model = model
        super().__init__(message)


class LLMUnavailableError(LLMClientError):
    """An LLM endpoint could not be reached after all retries."""


class ContextWindowError(LLMClientError):
    """The prompt does not fit the model's context window (a long episode outgrew it). The search graph ends
    such an episode with ``stop_reason="context_full"`` instead of failing it."""


class BatchError(S3Error):
    """Some episodes of a batch failed; the others ran to the end and their results are kept here.

    Raised after every episode has finished (none is left running), chained to the first failure.

    Attributes:
        results: One entry per question, in input order: the final state, or ``None`` where it failed.
        errors: The exception of each failed episode, by its index in the batch.
    """

    def __init__(self, results: list, errors: dict[int, BaseException]) -> None:
        self.results = results
        self.errors = errors
        first = min(errors)
        super().__init__(f"{len(errors)} of {len(results)} episodes failed (the others are in .results); "
                         f"first, #{first}: {type(errors[first]).__name__}: {errors[first]}")
