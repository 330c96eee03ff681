"""Known bugs written the way a learner would write them, planted into a complete workspace by replacing
one component's body. Independent of the fingerprint mutations in learn/fingerprints.py on purpose:
detection must work on outputs, whatever the code looks like."""

ATTN_PRELUDE = """
B, T, C = x.size()
q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
cos, sin = cos_sin
q, k = apply_rotary_emb(q, cos, sin), apply_rotary_emb(k, cos, sin)
q, k = norm(q), norm(k)
q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
"""


def manual_attention(mask=True, softmax_dim=-1, scale="sqrt", merge="transpose"):
    scale_expr = {"sqrt": "q.size(-1) ** -0.5", "none": "1.0", "d": "1.0 / q.size(-1)"}[scale]
    merge_expr = {"transpose": "y.transpose(1, 2).contiguous().view(B, T, -1)",
                  "no-transpose": "y.contiguous().view(B, T, -1)"}[merge]
    mask_code = "att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float('-inf'))" if mask else ""
    return ATTN_PRELUDE + f"""
att = (q @ k.transpose(-2, -1)) * {scale_expr}
{mask_code}
att = torch.softmax(att, dim={softmax_dim})
y = att @ v
y = {merge_expr}
return self.c_proj(y)
"""


# (component, known bug name, body that replaces the component's code)
PLANTS = [
    ("norm", "L2 norm instead of RMS", "return x / x.norm(dim=-1, keepdim=True)"),
    ("norm", "LayerNorm instead of RMSNorm",
     "mu = x.mean(-1, keepdim=True)\nreturn (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + 1e-5)"),
    ("rotary", "interleaved channel pairs",
     "x1, x2 = x[..., ::2], x[..., 1::2]\n"
     "return torch.stack([x1 * cos + x2 * sin, -x1 * sin + x2 * cos], dim=-1).flatten(-2)"),
    ("rotary", "rotation in the other direction",
     "d = x.shape[-1] // 2\nx1, x2 = x[..., :d], x[..., d:]\n"
     "return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)"),
    ("attention", "missing causal mask", manual_attention(mask=False)),
    ("attention", "wrong softmax axis", manual_attention(softmax_dim=-2)),
    ("attention", "missing 1/√d scaling", manual_attention(scale="none")),
    ("attention", "wrong scaling (1/d instead of 1/√d)", manual_attention(scale="d")),
    ("attention", "transposed heads", manual_attention(merge="no-transpose")),
    ("attention", "missing QK-norm", manual_attention().replace("q, k = norm(q), norm(k)\n", "")),
    ("block", "missing residual connection (attention)",
     "x = self.attn(norm(x), cos_sin, kv_cache)\nx = x + self.mlp(norm(x))\nreturn x"),
    ("block", "missing residual connection (MLP)",
     "x = x + self.attn(norm(x), cos_sin, kv_cache)\nx = self.mlp(norm(x))\nreturn x"),
    ("block", "sub-layer input not normalised",
     "x = x + self.attn(x, cos_sin, kv_cache)\nx = x + self.mlp(x)\nreturn x"),
    ("mlp", "ReLU instead of ReLU²", "return self.c_proj(torch.relu(self.c_fc(x)))"),
    ("mlp", "GELU instead of ReLU²", "return self.c_proj(F.gelu(self.c_fc(x)))"),
    ("embedding", "embedding not normalised",
     "B, T = idx.size()\nT0 = 0 if kv_cache is None else kv_cache.pos\n"
     "cos_sin = self.cos[:, T0:T0 + T], self.sin[:, T0:T0 + T]\nx = self.transformer.wte(idx)"),
    ("forward", "missing final norm",
     "logits = self.lm_head(x).float()\nsoftcap = self.config.softcap\n"
     "logits = softcap * torch.tanh(logits / softcap)"),
    ("forward", "missing logit softcap", "x = norm(x)\nlogits = self.lm_head(x).float()"),
    ("loss", "targets shifted again",
     "if targets is not None:\n"
     "    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1),\n"
     "                           ignore_index=-1, reduction=loss_reduction)\nreturn logits"),
    ("loss", "loss not shifted (predicting the input)",
     "if targets is not None:\n"
     "    return F.cross_entropy(logits.view(-1, logits.size(-1)), idx.view(-1), ignore_index=-1,\n"
     "                           reduction=loss_reduction)\nreturn logits"),
    ("loss", "sum instead of mean",
     "if targets is not None:\n"
     "    r = 'sum' if loss_reduction == 'mean' else loss_reduction\n"
     "    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1, reduction=r)\n"
     "return logits"),
]
