"""Mid/SFT/eval tasks: each is a sized, indexable set of conversations (nanochat's format) built from rows
or generated, plus a scoring rule for evals. `mixtures.py` says which tasks each phase trains on."""
