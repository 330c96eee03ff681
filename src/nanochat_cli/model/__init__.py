"""The GPT model (gpt.py), its optimizers (optim.py), dtype/device choice (precision.py) and the fast
training step (compiled.py)."""
