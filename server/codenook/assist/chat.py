"""Chat prompts rendered with the model's own template (from the GGUF): a pure function.

The template mixes control tokens (``<|im_start|>``) with message contents. We render it with
unique sentinels in place of the contents and split on them, so the engine parses specials only
in the template's own text: code that contains ``<|im_end|>`` stays text.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from codenook.engine.protocol import PromptPart

# A minimal ChatML fallback for models whose GGUF has no template.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class TemplateError(ValueError):
    """The model's chat template could not be rendered."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str


def render_chat(
    template: str | None,
    messages: Sequence[Message],
    *,
    bos_token: str = "",
    eos_token: str = "",
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[PromptPart, ...]:
    """Prompt parts for ``messages`` followed by the assistant's turn.

    ``tools`` (OpenAI-style function schemas) go to the template as its ``tools`` variable,
    which is how tool-trained templates (Qwen3-Coder's) describe them in the words the model
    was trained on; templates that ignore it render without them.
    """
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    sentinels = [f"\x00{secrets.token_hex(8)}\x00" for _ in messages]
    try:
        rendered = env.from_string(template or CHATML).render(
            messages=[
                {"role": m.role, "content": s} for m, s in zip(messages, sentinels, strict=True)
            ],
            add_generation_prompt=True,
            bos_token=bos_token,
            eos_token=eos_token,
            tools=list(tools) if tools else None,
        )
    except TemplateError:
        raise
    except Exception as exc:  # jinja2 errors of every kind
        raise TemplateError(f"the model's chat template failed to render: {exc}") from exc
    parts: list[PromptPart] = []
    rest = rendered
    for sentinel, message in zip(sentinels, messages, strict=True):
        head, found, rest = rest.partition(sentinel)
        if not found:
            raise TemplateError("the model's chat template dropped a message")
        parts += [(head, True), (message.content, False)]
    parts.append((rest, True))
    return tuple(p for p in parts if p[0])
