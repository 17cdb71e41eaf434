"""Command-line scripts (train, evaluate, benchmark, figures, demo) and the ``fedsllm`` console entry point."""
