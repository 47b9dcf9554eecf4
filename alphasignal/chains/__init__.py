"""LangChain runnables: prompts, structured-output helper, merge."""
