"""The LLM layer under `train` and `rag`: model loading, chat templates, generators, merging, GGUF.

`model` loads the embedded model, a Hub id or a local directory (4-bit on a GPU);
`chat_template` renders a chat to token ids once for training and generation
(`chat_token_ids`, `render_prompt_ids`) and names the end-of-turn stop ids; `merge` folds a
LoRA adapter into its base; `adapters` checks an adapter directory once for every stage;
`gguf_export` writes a merged Gemma 3 fine-tune as GGUF (what llama.cpp and Ollama read).
Generators: `generator` (the `Generator` protocol, `Decoding`, `make_generator`),
`hf_generate` (transformers + LoRA adapters), `llamacpp` (GGUF through the optional
llama-cpp-python), `openai_client` (an OpenAI-compatible server); `tiny` builds a tiny
random model for tests.
"""
