"""Chat templates, chat -> token ids, and the end-of-turn stop tokens.

A tokenizer's own template always wins (Qwen, Llama-3 instruct...). Base models such as
google/gemma-3-270m have turn tokens in their vocabulary but no template; we add Gemma's
instruct format so fine-tuning, eval and serving render exactly the same turns, and the
model learns to close its answer with `<end_of_turn>` (which is supervised). Generation
must then stop at that token, or a short fine-tune runs on into junk: `end_of_turn_token_ids`
gives the ids to pass as `eos_token_id`.

`chat_token_ids` is the one tokenisation of a chat: the trainer takes its ids and answer
mask (`train.data`), every local generator takes `render_prompt_ids` (the same function with
the generation prompt), so the ids a model was trained to answer after are the ids it is
fed when serving.
"""

from __future__ import annotations

from typing import Any

from aldlab.errors import UserError

#: Gemma's instruct format: the system prompt is folded into the first user turn (Gemma has
#: no system role), the assistant speaks as `model`, every turn ends with `<end_of_turn>\n`.
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] | trim + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') "
    "+ message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

#: Fallback for tokenizers with neither a template nor turn tokens: plain role headers,
#: each turn closed by the EOS token so generation stops where training taught it to.
GENERIC_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '### ' + message['role'] + '\n' + message['content'] | trim + eos_token + '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '### assistant\n' }}{%- endif -%}"
)

#: End-of-turn markers of common chat formats, checked in this order.
END_OF_TURN_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>")


def single_token_id(tokenizer: Any, token: str) -> int | None:
    """Id of a token that exists as a single vocabulary entry, else None.

    Looked up directly: `get_vocab()` builds a dict of the whole vocabulary (0.2 s for
    Gemma's 262k entries), which made every stop-token lookup cost that much.
    """
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
        return None  # unknown tokens map to the unk id (or None without one)
    return int(token_id)


def has_gemma_turn_tokens(tokenizer: Any) -> bool:
    return all(single_token_id(tokenizer, token) is not None for token in ("<start_of_turn>", "<end_of_turn>"))


def ensure_chat_template(tokenizer: Any) -> Any:
    """Leave a tokenizer's own template alone; add a turn-token template otherwise."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer
    tokenizer.chat_template = GEMMA_TEMPLATE if has_gemma_turn_tokens(tokenizer) else GENERIC_TEMPLATE
    return tokenizer


def end_of_turn_token_ids(tokenizer: Any) -> list[int]:
    """Token ids that end an assistant turn (use as `eos_token_id` in `generate`).

    The stop token the chat template itself writes after an assistant message first, then
    the EOS token. Guessing from the vocabulary is wrong for tokenizers that carry several
    formats' markers (a ChatML template over a vocabulary that also has `<end_of_turn>`
    would never stop); the known-marker list is only the fallback.
    """
    ids: list[int] = []
    template_stop = _template_stop_token_id(tokenizer)
    if template_stop is not None:
        ids.append(template_stop)
    else:
        for token in END_OF_TURN_TOKENS:
            token_id = single_token_id(tokenizer, token)
            if token_id is not None:
                ids.append(int(token_id))
                break
    if tokenizer.eos_token_id is not None and int(tokenizer.eos_token_id) not in ids:
        ids.append(int(tokenizer.eos_token_id))
    return ids


_SENTINEL = "aldlab-answer-sentinel"


def _template_stop_token_id(tokenizer: Any) -> int | None:
    """The first special token the template puts right after an assistant's text, if any."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": _SENTINEL}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # noqa: BLE001 - a template that cannot render falls back to the list
        return None
    if _SENTINEL not in text:
        return None
    after = text.split(_SENTINEL, 1)[1]
    special = set(getattr(tokenizer, "all_special_tokens", [])) | set(getattr(tokenizer, "get_added_vocab", dict)())
    # The longest special token at the start of the remaining text (ignoring whitespace).
    rest = after.lstrip()
    for token in sorted(special, key=len, reverse=True):
        if token and rest.startswith(token):
            token_id = single_token_id(tokenizer, token)
            if token_id is not None:
                return int(token_id)
    return None


# --------------------------------------------------------------------------- chat -> token ids


class TemplateNotPrefixConsistent(UserError):
    """The template renders earlier turns differently once later turns follow.

    Then no cut of the text marks where an answer starts: such a template cannot be trained
    on (the trainer stops), and generation tokenises its prompt whole.
    """


def render_chat(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    """`messages` as text in the tokenizer's chat template."""
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt))


def assistant_char_spans(
    tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False
) -> tuple[str, list[tuple[int, int]]]:
    """Full rendered text and the character spans of each assistant turn.

    Works with any template: the prompt rendered up to turn i with a generation prompt is a
    prefix of the rendering through turn i; the difference is the assistant's text plus its
    end-of-turn marker.
    """
    full = render_chat(tokenizer, messages, add_generation_prompt)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:i], add_generation_prompt=True)
        through = render_chat(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not full.startswith(through) or not through.startswith(before):
            raise TemplateNotPrefixConsistent(
                "채팅 템플릿이 접두사 규칙을 따르지 않아 답변 위치를 찾을 수 없습니다.",
                "The chat template is not prefix-consistent; cannot locate assistant turns.",
                hint="다른 모델/템플릿을 쓰세요 / use a model with a standard chat template",
            )
        spans.append((len(before), len(through)))
    return full, spans


def _encode(tokenizer: Any, text: str) -> list[int]:
    # The template writes <bos> itself, so the tokenizer must not add another one.
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def chat_token_ids(
    tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False
) -> tuple[list[int], list[bool]]:
    """Token ids of the rendered chat and, per id, whether it belongs to an assistant turn.

    An assistant turn is its text plus its end-of-turn marker (both supervised in training).
    The text is tokenised piece by piece, cut where each assistant turn starts and ends, so
    the ids of a chat up to an answer are exactly `render_prompt_ids` of the messages before
    it. Tokenising the whole text at once could merge the last prompt characters with the
    first answer characters into one token the generator never feeds the model.
    """
    text, spans = assistant_char_spans(tokenizer, messages, add_generation_prompt)
    cuts = [(0, False)]
    for start, end in spans:
        cuts += [(start, True), (end, False)]
    ids: list[int] = []
    is_answer: list[bool] = []
    for (start, answer), (end, _) in zip(cuts, [*cuts[1:], (len(text), False)], strict=True):
        piece = _encode(tokenizer, text[start:end]) if end > start else []
        ids += piece
        is_answer += [answer] * len(piece)
    return ids, is_answer


def render_prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The token ids a model is fed to answer `messages` (chat template + generation prompt).

    The one prompt tokenisation of generation (`llm.hf_generate`, `llm.llamacpp`); training
    builds its examples with the same `chat_token_ids`, so train and serve prompts agree
    token for token. A template that is not prefix-consistent (never trained on here) is
    rendered and tokenised whole.
    """
    try:
        return chat_token_ids(tokenizer, messages, add_generation_prompt=True)[0]
    except TemplateNotPrefixConsistent:
        return _encode(tokenizer, render_chat(tokenizer, messages, add_generation_prompt=True))
