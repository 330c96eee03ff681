"""Evaluation: bits per byte, the CORE metric, chat evals."""
