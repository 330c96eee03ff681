"""Training: one loop for base/mid/SFT/RL (`loop.py`), checkpoints with exact resume (`checkpoint.py`),
process groups (`dist.py`), schedules, the run manifest."""
