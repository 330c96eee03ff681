"""Known bugs written the way a learner would write them, planted into a complete workspace by replacing
one component's body. Independent of the fingerprint mutations in learn/fingerprints.py on purpose:
detection must work on outputs, whatever the code looks like."""


def manual_sdpa(mask=True, softmax_dim=-1, scale="sqrt"):
    """A hand-written attention kernel (training path: no cache, so n_past == 0)."""
    scale_expr = {"sqrt": "q.size(-1) ** -0.5", "none": "1.0", "d": "1.0 / q.size(-1)"}[scale]
    mask_code = ("att = att.masked_fill(torch.ones(tq, tk, dtype=torch.bool).triu(1 + n_past), float('-inf'))"
                 if mask else "")
    return f"""
if k.size(1) != q.size(1):
    rep = q.size(1) // k.size(1)
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
tq, tk = q.size(2), k.size(2)
att = (q @ k.transpose(-2, -1)) * {scale_expr}
{mask_code}
att = torch.softmax(att, dim={softmax_dim})
return att @ v
"""


ATTENTION = """
B, T, C = x.shape
q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
q, k = norm(q), norm(k)
q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
n_past = 0
if kv_cache is not None:
    n_past = kv_cache.pos
    k, v = kv_cache.insert(self.layer_idx, k, v)
y = self.attend(q, k, v, n_past)
y = y.transpose(1, 2).reshape(B, T, C)
return self.c_proj(y)
"""

# (component, known bug name, body that replaces the component's code)
PLANTS = [
    ("norm", "L2 norm instead of RMS", "return x / x.norm(dim=-1, keepdim=True)"),
    ("norm", "LayerNorm instead of RMSNorm",
     "mu = x.mean(-1, keepdim=True)\nreturn (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + 1e-5)"),
    ("rotary", "interleaved channel pairs",
     "x1, x2 = x[..., ::2], x[..., 1::2]\ncos, sin = cos.unsqueeze(1), sin.unsqueeze(1)\n"
     "return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)"),
    ("rotary", "rotation in the other direction",
     "d = x.shape[-1] // 2\nx1, x2 = x[..., :d], x[..., d:]\ncos, sin = cos.unsqueeze(1), sin.unsqueeze(1)\n"
     "return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)"),
    ("sdpa", "missing causal mask", manual_sdpa(mask=False)),
    ("sdpa", "wrong softmax axis", manual_sdpa(softmax_dim=-2)),
    ("sdpa", "missing 1/√d scaling", manual_sdpa(scale="none")),
    ("sdpa", "wrong scaling (1/d instead of 1/√d)", manual_sdpa(scale="d")),
    ("attention", "transposed heads", ATTENTION.replace("y.transpose(1, 2).reshape(B, T, C)", "y.reshape(B, T, C)")),
    ("attention", "missing QK-norm", ATTENTION.replace("q, k = norm(q), norm(k)\n", "")),
    ("attention", "missing rotary embedding", ATTENTION.replace(
        "q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)\n", "")),
    ("block", "missing residual connection (attention)",
     "x = self.attn(norm(x), cos, sin, kv_cache)\nx = x + self.mlp(norm(x))\nreturn x"),
    ("block", "missing residual connection (MLP)",
     "x = x + self.attn(norm(x), cos, sin, kv_cache)\nx = self.mlp(norm(x))\nreturn x"),
    ("block", "sub-layer input not normalised",
     "x = x + self.attn(x, cos, sin, kv_cache)\nx = x + self.mlp(x)\nreturn x"),
    ("mlp", "ReLU instead of ReLU²", "return self.c_proj(torch.relu(self.c_fc(x)))"),
    ("mlp", "GELU instead of ReLU²", "return self.c_proj(F.gelu(self.c_fc(x)))"),
    ("mlp", "square without ReLU", "h = self.c_fc(x)\nreturn self.c_proj(h * h)"),
    ("embedding", "embedding not normalised",
     "B, T = idx.shape\nt0 = 0 if kv_cache is None else kv_cache.pos\n"
     "cos, sin = self.cos[t0:t0 + T], self.sin[t0:t0 + T]\nx = self.transformer.wte(idx)"),
    ("logits", "missing logit softcap", "return self.lm_head(x)[..., :self.config.vocab_size].float()"),
    ("logits", "padding columns not dropped",
     "logits = self.lm_head(x).float()\nreturn self.config.softcap * torch.tanh(logits / self.config.softcap)"),
    ("loss", "targets shifted again",
     "if targets is None:\n    return logits\n"
     "return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1),\n"
     "                       ignore_index=-1, reduction=loss_reduction)"),
    ("loss", "loss not shifted (predicting the input)",
     "if targets is None:\n    return logits\n"
     "return F.cross_entropy(logits.flatten(0, 1), idx.flatten(), ignore_index=-1, reduction=loss_reduction)"),
    ("loss", "sum instead of mean",
     "if targets is None:\n    return logits\n"
     "r = 'sum' if loss_reduction == 'mean' else loss_reduction\n"
     "return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction=r)"),
]
