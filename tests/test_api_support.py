"""The API server on an event loop of its own, so tests can drive it with the official
synchronous SDKs as Claude Code and OpenAI tools would (no tests here: shared by test_api*)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import anthropic
import openai

from codenook.api import ApiServer, start_api

T = TypeVar("T")


class ApiThread:
    def __init__(self, backend: Any, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        options.setdefault("api_key", None)
        options.setdefault("allow_remote", False)
        self.server: ApiServer = self.call(start_api(backend, "127.0.0.1", 0, **options))
        self.url = f"http://127.0.0.1:{self.server.port}"

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def anthropic(self, **options: Any) -> anthropic.Anthropic:
        options.setdefault("api_key", "any")
        return anthropic.Anthropic(base_url=self.url, max_retries=0, timeout=30, **options)

    def openai(self, **options: Any) -> openai.OpenAI:
        options.setdefault("api_key", "any")
        return openai.OpenAI(base_url=self.url + "/v1", max_retries=0, timeout=30, **options)

    def close(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()
