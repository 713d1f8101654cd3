"""llama.cpp-format output and engines: GGUF export of a fine-tune, Ollama Modelfile, CPU generator.

`gguf_export` writes a merged Gemma 3 fine-tune as GGUF (what llama.cpp and Ollama read);
`llamacpp` runs GGUF models through llama-cpp-python when that optional package is installed.
"""
