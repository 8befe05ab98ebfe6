"""The Anthropic Messages API and an OpenAI-compatible API over the engine host (docs/api.md).

The engine host daemon calls ``start_api`` from its running event loop; every request runs at
the agent's priority, so keystrokes in the editors sharing the model always come first.
"""

from codenook.api.http import ApiServer, start_api
from codenook.api.service import Backend, Counters

__all__ = ["ApiServer", "Backend", "Counters", "start_api"]
