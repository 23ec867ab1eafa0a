"""The JSON error answer of the API, `{"error": "field: message", "field": ..., "errors": [...]}`, in one place."""

from __future__ import annotations

import json

from fastapi.responses import JSONResponse

MAX_LISTED_ERRORS = 20


def error_body(errors: list[tuple[str | None, str]]) -> dict:
    """The body for `errors` (field, message), the first of them leading."""
    field, message = errors[0]
    return {
        "error": f"{field}: {message}" if field else message,
        "field": field,
        "errors": [{"field": f or "", "message": m} for f, m in errors[:MAX_LISTED_ERRORS]],
    }


def error_response(
    status: int, errors: list[tuple[str | None, str]], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(errors), status_code=status, headers=headers)


def raw_error(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """The same answer as the bytes of a whole HTTP/1.1 response that closes the connection, for code below the
    app (a connection refused or timed out before it has a request)."""
    body = json.dumps(error_body([(None, message)])).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()] + ["connection: close", "", ""]
    return "\r\n".join(lines).encode() + body
