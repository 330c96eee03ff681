"""Learn mode: write the GPT yourself, one `NotImplementedError` at a time, checked against the reference."""
