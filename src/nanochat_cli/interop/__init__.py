"""Models out: `nanochat export hf` (a transformers NanoChatForCausalLM directory).

One module per idea: hf_config (our GPTConfig ↔ NanoChatConfig, and what either side cannot express), weights
(key names, the rotary sign, vocab padding), hf_tokenizer (tiktoken ranks ↔ an HF tokenizer.json, the Jinja chat
template), verify (parity measured in transformers), model_card, and one module per command.
Nothing here imports torch or transformers at import time.
"""
