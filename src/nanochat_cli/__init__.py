"""nanochat-cli: one `nanochat` command from nothing to a chatting GPT model."""

__version__ = "0.1.0"
