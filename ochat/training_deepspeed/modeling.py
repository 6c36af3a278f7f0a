"""The training forward pass: padding-free packed attention, and the model inputs of a collated micro-batch.

Packed rows hold several samples back to back. transformers already keeps
them apart when it gets `position_ids` restarting at 0 and no attention mask,
but on the SDPA path it does so with a dense block-diagonal mask over the
whole row, which costs (sum of lengths)^2 instead of the sum of squares and
makes packing slower than padding. `flash_attention_2` (CUDA, when the
flash-attn package is installed) takes the sample boundaries (`cu_seq_lens_*`)
natively; everywhere else the `ochat_packed_sdpa` implementation registered
here runs SDPA once per sample with a causal mask, and falls back to plain
SDPA for padded batches.
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F

PACKED_SDPA = "ochat_packed_sdpa"


def packed_sdpa_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """SDPA per packed sample (boundaries from `cu_seq_lens_q`); plain SDPA when there are none."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu_seq_lens = kwargs.get("cu_seq_lens_q")
    if cu_seq_lens is None or attention_mask is not None or query.shape[0] != 1:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    groups = query.shape[1] // key.shape[1]
    lengths = cu_seq_lens.diff().tolist()
    # split (not slicing) so the backward pass concatenates gradients instead of zero-filling a full row per sample
    outputs = [
        F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True, enable_gqa=groups > 1)
        for q, k, v in zip(query.split(lengths, dim=2), key.split(lengths, dim=2), value.split(lengths, dim=2))
    ]
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


def _packed_sdpa_mask(*args, attention_mask=None, **kwargs):
    """No dense mask for packed rows (the attention keeps samples apart); SDPA's own mask for padded ones."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register_packed_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention_forward)
    AttentionMaskInterface.register(PACKED_SDPA, _packed_sdpa_mask)


def choose_attn_implementation(packing: bool, on_cuda: bool) -> str:
    """flash-attention 2 on CUDA when installed, our per-sample SDPA for packing otherwise, SDPA for padding."""
    if on_cuda and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    if packing:
        register_packed_attention()
        return PACKED_SDPA
    return "sdpa"


def model_inputs(batch: dict, device) -> dict:
    """The keyword arguments of the causal LM's forward for one collated micro-batch."""
    inputs = {"input_ids": batch["input_ids"].to(device), "use_cache": False}
    if batch["attention_mask"] is not None:
        inputs["attention_mask"] = batch["attention_mask"].to(device)
    if batch["position_ids"] is not None:
        inputs["position_ids"] = batch["position_ids"].to(device)
        cu_seq_lens = batch["cu_seq_lens"].to(device)
        inputs.update(
            cu_seq_lens_q=cu_seq_lens,
            cu_seq_lens_k=cu_seq_lens,
            max_length_q=batch["max_length"],
            max_length_k=batch["max_length"],
        )
    return inputs
