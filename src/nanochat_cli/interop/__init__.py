"""Models in and out: `nanochat export hf` (a transformers NanoChatForCausalLM directory), `nanochat import hf`
and `nanochat import nanochat` (karpathy/nanochat's Oct–Dec 2025 checkpoint layout).

One module per idea: hf_config (our GPTConfig ↔ NanoChatConfig, and what either side cannot express), weights
(key names, the rotary sign, vocab padding), hf_tokenizer (tiktoken ranks ↔ an HF tokenizer.json, the Jinja chat
template), safe_pickle (nanochat's tokenizer.pkl without running anything), verify (parity measured in
transformers), model_card, into_run (an imported model becomes a checkpoint of a run), and one module per command.
Nothing here imports torch or transformers at import time.
"""
