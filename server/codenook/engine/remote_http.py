"""HTTP to an OpenAI-compatible server, and the one message each way of failing deserves.

Standard library only (``http.client``): a request is one connection, every wait is bounded by
``engine.timeoutS``, TLS is always verified (``engine.caFile`` replaces the system's
authorities with a team's own), and the API key comes from the environment variable the
settings name, never from a file.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import socket
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codenook.engine.protocol import EngineError, EngineUnreachable


@dataclass(frozen=True)
class RemoteConfig:
    url: str
    model: str | None = None
    api_key: str | None = None
    timeout_s: float = 30.0
    ca_file: str | None = None
    prompt_format: str = "auto"
    context_size: int = 4096  # when the server does not say its own

    @classmethod
    def from_settings(cls, settings: Any) -> RemoteConfig:
        engine = settings.engine
        if not engine.url:
            raise EngineError(
                "engine.backend is openai but engine.url is not set: set it to the server's"
                " base URL, e.g. http://gpu-box:8000/v1"
            )
        key = None
        if engine.apiKeyEnv:
            key = os.environ.get(engine.apiKeyEnv)
            if not key:
                raise EngineError(
                    f"engine.apiKeyEnv names the environment variable {engine.apiKeyEnv}, which"
                    " is not set in the environment codenook was started from"
                )
        return cls(
            url=engine.url,
            model=engine.model,
            api_key=key,
            timeout_s=float(engine.timeoutS),
            ca_file=engine.caFile,
            prompt_format=engine.promptFormat,
            context_size=settings.model.contextSize,
        )


class ServerError(EngineError):
    """An HTTP status from the server; ``status`` lets callers decide on retries."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Http:
    """Plain HTTP(S) to one server; every call has its own connection and a bounded wait."""

    def __init__(self, config: RemoteConfig) -> None:
        parsed = urllib.parse.urlsplit(config.url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise EngineError(
                f"engine.url {config.url!r} is not an http:// or https:// URL with a host"
            )
        self.url = config.url.strip()
        self.https = parsed.scheme == "https"
        self.host = parsed.hostname
        self.loopback = _is_loopback(parsed.hostname)
        self.port = parsed.port or (443 if self.https else 80)
        path = parsed.path.rstrip("/")
        self.root = path[: -len("/v1")] if path.endswith("/v1") else path
        self.timeout_s = config.timeout_s
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if config.api_key:
            self.headers["Authorization"] = f"Bearer {config.api_key}"
        self._tls: ssl.SSLContext | None = None
        if self.https:
            try:
                self._tls = ssl.create_default_context(cafile=config.ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise EngineError(
                    f"engine.caFile {config.ca_file!r} cannot be read: {exc}"
                ) from exc

    def connect(self, timeout_s: float | None = None) -> http.client.HTTPConnection:
        timeout = timeout_s or self.timeout_s
        if self.https:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self._tls
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def open(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a request and read its status line; the caller reads and closes."""
        conn = self.connect(timeout_s)
        data = json.dumps(body).encode() if body is not None else None
        try:
            conn.request(method, self.root + path, body=data, headers=self.headers)
            return conn, conn.getresponse()
        except BaseException as exc:
            conn.close()
            raise self.failure(exc) from exc

    def json(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """The decoded answer; ``timeout_s`` shortens the wait for calls made on the
        editor's thread (token counts)."""
        conn, response = self.open(method, path, body, timeout_s)
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self.failure(exc) from exc
        finally:
            conn.close()
        if response.status != 200:
            raise self.status_error(response.status, raw, path)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise EngineError(
                f"the model server at {self.url} answered {path} with something that is not"
                f" JSON: {raw[:80]!r}"
            ) from exc

    def failure(self, exc: BaseException) -> EngineError:
        """One message per way of failing, each naming the URL and what to change."""
        if isinstance(exc, EngineError):
            return exc
        if isinstance(exc, ssl.SSLCertVerificationError | ssl.SSLError):
            return EngineError(
                f"TLS verification of {self.url} failed ({exc}): set engine.caFile to the CA"
                " bundle that signed the server's certificate"
            )
        if isinstance(exc, TimeoutError | socket.timeout):
            return EngineUnreachable(
                f"the model server at {self.url} did not answer within engine.timeoutS"
                f" ({self.timeout_s:g} s)"
            )
        if isinstance(exc, ConnectionError | socket.gaierror):
            return EngineUnreachable(
                f"cannot reach the model server at {self.url} ({exc}): start it, or fix engine.url"
            )
        return EngineError(f"the connection to the model server at {self.url} failed: {exc}")

    def status_error(self, status: int, raw: bytes, path: str) -> ServerError:
        said = error_text(raw)
        said = f": {said}" if said else ""
        if status in (401, 403):
            fix = "put its API key in the environment variable named by engine.apiKeyEnv"
        elif status == 404:
            fix = "check engine.url (the base URL, ending in /v1) and engine.model"
        elif status == 400:
            fix = "the prompt may exceed the server's context length (its --max-model-len / -c)"
        elif status in (502, 503):
            fix = "the server is still loading its model or is overloaded (or a proxy before it"
            fix += " is); codenook tries again, see the server's log if it lasts"
        else:
            fix = "see the server's log"
        return ServerError(
            f"the model server at {self.url} refused {path} (HTTP {status}{said}); {fix}", status
        )


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (no network between codenook and the server)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def error_text(raw: bytes) -> str:
    """The message inside an error body: OpenAI's {"error": {"message"}}, or the text itself."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:200]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or "")[:200]
        if isinstance(error, str):
            return error[:200]
        detail = body.get("detail") or body.get("message")
        if detail:
            return str(detail)[:200]
    return ""
