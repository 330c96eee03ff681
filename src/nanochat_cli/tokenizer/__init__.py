"""Tokenizers: the BPE we train (tiktoken at run time), a byte-level one for tests and learn mode,
and the chat template that renders conversations to ids + a loss mask."""
