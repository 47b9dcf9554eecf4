"""Backends: builtin, ollama, llamacpp, openai-compatible. See base.py."""
