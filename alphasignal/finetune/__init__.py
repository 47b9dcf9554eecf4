"""Fine-tune, evaluate, export and serve a chart vision-language model.

``tiny`` builds a small random Gemma-3-style VLM from a config (the CPU path and
the tests); ``train`` runs the LoRA recipe (Unsloth on a GPU, transformers + peft
+ TRL on the CPU); ``evaluate`` compares models through the pipeline; ``export``
merges, converts to GGUF (+ mmproj) and writes an Ollama Modelfile; ``serve``
starts or prints the server commands. Everything heavy is imported lazily.
"""
