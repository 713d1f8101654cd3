"""Which model answers, and the Assistant that answers: one resolver for every command.

`ask`, `chat`, `serve` and `eval` all turn `--model` / `--adapter` / `--base` into a
`ModelChoice` here and build their `Assistant` with `build_assistant`, so the same flags
mean the same thing everywhere and the KB, index and generator are set up one way.
Heavy imports (torch, the RAG core) happen inside functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aldlab.errors import UserError
from aldlab.llm.adapters import check_adapter_dir
from aldlab.settings import get_secret, shipped_kb_dir

if TYPE_CHECKING:
    from aldlab.kb.schema import KnowledgeBase
    from aldlab.llm.generator import Generator
    from aldlab.rag.assistant import Assistant
    from aldlab.rag.config import RagConfig
    from aldlab.rag.retriever import HybridRetriever

#: Name of an adapter given as a bare `--adapter DIR`: the `ft` of eval's systems
#: (base, ft, base+rag, ft+rag) and of the adapter `aldlab pipeline` records.
DEFAULT_ADAPTER_NAME = "ft"

#: An adapter name becomes a model name in the API and a system name in eval (`NAME+rag`).
ADAPTER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

#: Shown whenever the answering model is the embedded base model (never instruction-tuned).
BASE_MODEL_WARNING = (
    "기본 모델(google/gemma-3-270m)은 지시 학습되지 않아 답변이 문장이 되지 않을 수 있습니다. "
    "`aldlab pipeline --preset cpu-demo` 로 어시스턴트를 학습하거나 `--context-only` 로 검색 문서만 보세요 / "
    "The base model is not instruction-tuned and its answers are often not usable: train the assistant "
    "with `aldlab pipeline --preset cpu-demo` or use `--context-only`."
)


def parse_adapter_specs(specs: list[str] | None) -> dict[str, str]:
    """`--adapter` values -> {name: dir}, in order. The one `--adapter` grammar.

    `DIR` is named `ft` (then `ft2`, `ft3`, ...), `NAME=DIR` is named NAME. A value whose
    part before `=` looks like a path (`runs/lr=2e-4/adapter`) is a bare DIR. Each DIR must
    be an existing directory; `base` is reserved for the base model.
    """
    adapters: dict[str, str] = {}
    bare = 0
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep or "/" in name or "\\" in name:
            bare += 1
            name, path = (DEFAULT_ADAPTER_NAME if bare == 1 else f"{DEFAULT_ADAPTER_NAME}{bare}"), spec
        name, path = name.strip(), path.strip()
        _check_adapter_name(name, spec)
        if name in adapters:
            raise UserError(
                f"어댑터 이름이 두 번 쓰였습니다: {name}",
                f"Adapter name used twice: {name}",
                hint="--adapter 이름=DIR 로 서로 다른 이름을 주세요 / give each adapter its own NAME=DIR",
            )
        directory = check_adapter_dir(
            path,
            hint="aldlab train의 출력 디렉터리를 주세요 (--adapter DIR 또는 이름=DIR) / "
            "pass the output dir of aldlab train (--adapter DIR or NAME=DIR)",
        )
        adapters[name] = str(directory)
    return adapters


def _check_adapter_name(name: str, spec: str) -> None:
    if name == "base":
        raise UserError(
            "'base'는 어댑터 이름으로 쓸 수 없습니다 (기본 모델 이름).",
            "'base' is reserved for the base model.",
            hint="--adapter ald=DIR",
        )
    if not re.match(ADAPTER_NAME_PATTERN, name):
        raise UserError(
            f"--adapter 형식이 잘못되었습니다: {spec!r}",
            f"Bad --adapter value: {spec!r}",
            hint="--adapter DIR 또는 이름=DIR (이름: 영문자·숫자·'.'·'_'·'-') / use DIR or NAME=DIR "
            "(NAME: letters, digits, '.', '_', '-')",
        )


@dataclass
class ModelChoice:
    """Which base model and adapters to load, and which one answers by default."""

    model_name: str | None
    adapters: dict[str, str]
    default: str  # "base" or an adapter name
    notes: list[str] = field(default_factory=list)  # said on stderr before answering
    base_warning: bool = False  # the default is the embedded, non-instruction-tuned base

    def describe(self, name: str | None = None) -> str:
        """'ft — LoRA /runs/x/adapter (base embedded)' for the model that answered."""
        name = name or self.default
        base = self.model_name or "embedded"
        if name in self.adapters:
            return f"{name} — 파인튜닝 / fine-tuned LoRA {self.adapters[name]} (base {base})"
        return f"base — 기본 모델 / base model {base}"


def _same_base(a: str | None, b: str | None) -> bool:
    from aldlab.llm.model import EMBEDDED_ALIASES

    def norm(name: str | None) -> str:
        return "embedded" if name is None or name in EMBEDDED_ALIASES else str(Path(name).expanduser())

    return norm(a) == norm(b)


def is_embedded_base(model_name: str | None) -> bool:
    from aldlab.llm.model import EMBEDDED_ALIASES, default_model_name

    return (model_name or default_model_name()) in EMBEDDED_ALIASES


def choose_model(
    model: str | None,
    adapters: dict[str, str] | None,
    *,
    base: bool = False,
    llm_url: str | None = None,
    context_only: bool = False,
) -> ModelChoice:
    """One resolver for ask, chat and serve: flags first, then the pipeline's recorded adapter.

    `adapters` come from `parse_adapter_specs`; the first one answers by default. `base`
    (`--base`/`--no-adapter`) makes the base model answer and skips the recorded adapter.
    Otherwise, with no adapter given, the registry's promoted model (`aldlab pipeline`, `aldlab improve`)
    is used when it still exists and was trained on the same base (an adapter on another
    base model would not load). A remote `llm_url` serves its own models.
    """
    from aldlab.settings import default_adapter, default_adapter_path

    adapters = dict(adapters or {})
    choice = ModelChoice(model, adapters, "base" if base or not adapters else next(iter(adapters)))
    if not adapters and not base and not llm_url:
        recorded = default_adapter()
        if recorded is not None and not recorded.exists():
            choice.notes.append(
                f"기록된 기본 어댑터가 없습니다: {recorded.adapter_dir} ({default_adapter_path()}) / "
                "the recorded default adapter is gone"
            )
        elif recorded is not None and model is not None and not _same_base(model, recorded.base_model):
            choice.notes.append(
                f"--model {model} 은(는) 기본 어댑터의 베이스({recorded.base_model or 'embedded'})와 달라 어댑터 없이 답합니다 / "
                "the default adapter was trained on another base model, so it is not used"
            )
        elif recorded is not None:
            choice.model_name = model or recorded.base_model
            choice.adapters = {DEFAULT_ADAPTER_NAME: str(recorded.adapter_dir)}
            choice.default = DEFAULT_ADAPTER_NAME
    # context-only never loads a model (and the check would import torch for nothing)
    if not context_only and choice.default == "base" and not llm_url and is_embedded_base(choice.model_name):
        choice.base_warning = True
    return choice


def rag_config_from_flags(
    preset: str | None,
    config_file: Path | None,
    *,
    llm_url: str | None = None,
    llm_model: str | None = None,
    top_k: int | None = None,
    max_new_tokens: int | None = None,
    dense_model: str | None = None,
) -> RagConfig:
    """The `rag:` settings: defaults <- preset <- config file <- flags."""
    from aldlab.config import resolve_config
    from aldlab.rag.config import RagConfig

    overrides = {"top_k": top_k, "max_new_tokens": max_new_tokens, "llm_url": llm_url, "llm_model": llm_model,
                 "dense_model": dense_model}
    return resolve_config(RagConfig, "rag", preset=preset, config_file=config_file, overrides=overrides)


def generator_from_config(
    config: RagConfig, model_name: str | None = None, adapters: dict[str, str] | None = None, llm_url: str | None = None
) -> Generator:
    """`llm.generator.make_generator` with a `RagConfig`'s decoding, engine and server.

    Every command's assistant gets its generator here, so ask/chat/serve/eval decode the
    same way. The API key is read only when a server is used.
    """
    from aldlab.llm.generator import Decoding, make_generator

    url = llm_url or config.llm_url
    decoding = Decoding(config.temperature, config.repetition_penalty, config.no_repeat_ngram_size)
    api_key = get_secret(config.llm_api_key_env) if url else None
    return make_generator(decoding, model_name, adapters, url, config.llm_model, api_key, config.engine)


def build_assistant(
    kb: str | Path | None,
    config: RagConfig,
    *,
    model_name: str | None = None,
    adapters: dict[str, str] | None = None,
    load_model: bool = False,
) -> Assistant:
    """The Assistant over `kb` (default: the shipped KB): the one place every command builds it.

    The generator (local model, or `config.llm_url`) loads on first use, so context-only
    answers and refusals never load an LLM; `load_model=True` loads it now, which a server
    wants: every request then shares one model and the first user does not wait for it
    (or race a second request into loading it twice).
    """
    from aldlab.rag.assistant import Assistant

    assistant = Assistant.from_config(
        kb or shipped_kb_dir(), config, model_name=model_name, adapters=adapters or None, llm_url=config.llm_url
    )
    if load_model:
        load = getattr(assistant.generator, "load", None)
        if callable(load):
            load()
    return assistant


def build_retriever(
    kb: KnowledgeBase, config: RagConfig, *, kb_source: str | Path | None = None, show_progress: bool = True
) -> HybridRetriever:
    """Retriever with its calibration: fitted on the dev set when it fits this KB, else default."""
    from aldlab.rag.retriever import HybridRetriever

    retriever = HybridRetriever.from_kb(kb, config, kb_source=kb_source, show_progress=show_progress)
    ensure_calibration(retriever, config)
    return retriever


def calibration_sets(config: RagConfig) -> list[Path]:
    """The question files the refusal calibration is fitted on (existing ones only)."""
    from aldlab.settings import REPO_ROOT

    if config.dev_set is None:
        paths = [REPO_ROOT / "evalsets" / "dev.jsonl", REPO_ROOT / "evalsets" / "user-dev.jsonl"]
    else:
        paths = list(config.dev_set) if isinstance(config.dev_set, list) else [config.dev_set]
    return [Path(p) for p in paths if Path(p).exists()]


def ensure_calibration(retriever: HybridRetriever, config: RagConfig) -> None:
    """Fit and store the calibration once per index, retrieval settings and question sets (~2 s)."""
    from aldlab.rag.confidence import calibrate, devset_matches_kb, sets_sha256

    paths = calibration_sets(config)
    if not paths:
        return
    settings = retrieval_settings(config)
    current = retriever.calibration.fitted_on
    if current.get("retrieval") == settings and current.get("dev_sha256") == sets_sha256(paths):
        return
    if not devset_matches_kb(paths[0], retriever.document_ids):
        return  # a user's own KB: the built-in default calibration applies
    calibration = calibrate(
        retriever, paths, names_refused=config.refuse_unknown_names, site_refused=config.refuse_site_specific,
        refuse_share=config.refusal_target,
    )
    calibration.fitted_on["retrieval"] = settings
    retriever.set_calibration(calibration)


def retrieval_settings(config: RagConfig) -> dict[str, Any]:
    """The settings a calibration depends on (a change triggers a refit)."""
    return {
        # how the threshold is chosen (see confidence.calibrate)
        "refusal_rule": "+".join(
            [rule for rule, on in (("unknown-names-v1", config.refuse_unknown_names),
                                   ("site-specific-v1", config.refuse_site_specific)) if on] or ["confidence-only"]
        ),
        "threshold_rule": f"refuse-share-of-all-{config.refusal_target:g}",
        "candidates": config.candidates,
        "rrf_weight": config.rrf_weight,
        "translation_weight": config.translation_weight,
        "question_ngram_weight": config.question_ngram_weight,
        "rrf_k": config.rrf_k,
        "mmr_lambda": config.mmr_lambda,
        "synonym_weight": config.synonym_weight,
        "dense_model": config.dense_model,
        "dense_query": "own+kb-spelling-mean-v1",
        "coverage": "values-as-units-v1",  # rag.retriever.coverage_terms
        "question_weight": config.question_weight,
        "reranker": config.reranker,
    }

