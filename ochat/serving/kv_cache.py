"""The KV cache of the running batch and its memory budget.

Layout: one left-padded batch per replica, each transformers cache layer holding
keys/values of shape [rows, kv heads, columns, head dim] in buffers with spare columns:

    running batch, left-padded:        attention_mask      position of next token
      seq a  [pad pad  p  p  p  g]     0 0 1 1 1 1         4
      seq b  [ p   p   p  p  g  g]     1 1 1 1 1 1         6

What the layout holds is rows x buffer columns token slots (padding and spare room
included); that product is what the budget bounds and what `/metrics` reports as used.
The choice of this layout over a per-row one is measured in benchmarks/kv_layout.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Optional

import torch
from transformers import Cache
from transformers.cache_utils import DynamicLayer

logger = logging.getLogger(__name__)

GIB = 1 << 30
CPU_MEMORY_FRACTION = 0.25  # of the RAM available at start-up, for the KV cache of a CPU replica


class RoomyLayer(DynamicLayer):
    """transformers' `DynamicLayer` with spare columns: a decode step writes one column of keys and values
    instead of concatenating (re-copying) the whole cache; with concatenation a 32-row step at 636 cached
    tokens took 23 ms instead of 9 ms. `room_limit` (columns) keeps a reallocation within the KV budget."""

    spare_columns = 256

    def __init__(self, room_limit: Optional[int] = None):
        super().__init__()
        self.room_limit = room_limit

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.hold(key_states[..., :0, :], value_states[..., :0, :])
        start = self.keys.shape[-2]
        end = start + key_states.shape[-2]
        if end > self._key_buffer.shape[-2]:
            self.hold(self.keys, self.values, room=end - start)
        self._key_buffer[..., start:end, :] = key_states
        self._value_buffer[..., start:end, :] = value_states
        self.keys, self.values = self._key_buffer[..., :end, :], self._value_buffer[..., :end, :]
        return self.keys, self.values

    def hold(self, keys: torch.Tensor, values: torch.Tensor, room: int = 0) -> RoomyLayer:
        """Take `keys`/`values` as the cache content, in new buffers with `room` plus spare columns free."""
        length = keys.shape[-2]
        columns = length + room + self.spare_columns
        if self.room_limit is not None:
            columns = max(length + room, min(columns, self.room_limit))
        shape = (*keys.shape[:-2], columns, keys.shape[-1])
        self._key_buffer, self._value_buffer = keys.new_empty(shape), values.new_empty(shape)
        self._key_buffer[..., :length, :] = keys
        self._value_buffer[..., :length, :] = values
        self.keys, self.values = self._key_buffer[..., :length, :], self._value_buffer[..., :length, :]
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        return self

    @property
    def columns(self) -> int:
        """Token columns allocated per row (content, padding and spare room)."""
        return self._key_buffer.shape[-2] if self.is_initialized else 0


def cache_tensors(cache: Cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def make_cache(tensors: Sequence[tuple[torch.Tensor, torch.Tensor]], room_limit: Optional[int] = None) -> Cache:
    """A transformers `Cache` of roomy layers holding `tensors` (empty: layers appear on the first forward)."""
    if not tensors:
        return Cache(layer_class_to_replicate=lambda: RoomyLayer(room_limit))
    return Cache(layers=[RoomyLayer(room_limit).hold(keys, values) for keys, values in tensors])


def cache_columns(cache: Optional[Cache]) -> int:
    """Columns allocated per row by a cache of roomy layers (0 for no cache)."""
    if cache is None or not cache.layers:
        return 0
    return max(getattr(layer, "columns", layer.keys.shape[-2] if layer.is_initialized else 0) for layer in cache.layers)


def left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


# -- the budget ------------------------------------------------------------------------------------------------


def kv_bytes_per_token(hf_config, dtype: torch.dtype) -> int:
    """Bytes one cached token takes: layers x KV heads x head dim x 2 (keys and values) x dtype bytes."""
    heads = hf_config.num_attention_heads
    kv_heads = getattr(hf_config, "num_key_value_heads", None) or heads
    head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // heads
    element_bytes = torch.empty((), dtype=dtype).element_size()
    return hf_config.num_hidden_layers * kv_heads * head_dim * 2 * element_bytes


def weights_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )


def available_cpu_memory() -> int:
    """RAM available now (MemAvailable), falling back to total physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@torch.inference_mode()
def measure_activation_headroom(model, tokens: int) -> int:
    """Peak CUDA memory a forward of `tokens` prompt tokens needs beyond the weights (logits included)."""
    device = next(model.parameters()).device
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    model(input_ids=torch.zeros((1, tokens), dtype=torch.long, device=device), use_cache=False)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    torch.cuda.empty_cache()
    return peak


def derive_budget_tokens(
    model, max_context: int, max_batch_size: int, kv_cache_tokens: Optional[int], gpu_memory_utilization: float
) -> int:
    """The replica's KV budget in tokens: the given one, else what the device's memory allows.

    Derived budgets take half the memory left for the cache: merging joiners into the batch or
    growing its buffers holds the old and the new cache at once for a moment. Never more than
    `max_batch_size` full contexts, the most the batch can ever use.
    """
    device = next(model.parameters()).device
    per_token = kv_bytes_per_token(model.config, next(model.parameters()).dtype)
    ceiling = max_batch_size * max_context
    if kv_cache_tokens is not None:
        if kv_cache_tokens < 2:
            raise ValueError(f"kv_cache_tokens must be at least 2, not {kv_cache_tokens}")
        return kv_cache_tokens
    if device.type == "cuda":
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], not {gpu_memory_utilization}")
        total = torch.cuda.get_device_properties(device).total_memory
        headroom = measure_activation_headroom(model, max_context)
        free_bytes = gpu_memory_utilization * total - torch.cuda.memory_allocated(device) - headroom
        if free_bytes < 2 * per_token * max_context:
            raise ValueError(
                f"the KV cache gets {free_bytes / GIB:.2f} GiB after weights and a {headroom / GIB:.2f} GiB "
                f"activation headroom at gpu_memory_utilization {gpu_memory_utilization}: not twice one full "
                f"context ({per_token * max_context / GIB:.2f} GiB); raise gpu_memory_utilization or use a smaller "
                "model"
            )
        return min(ceiling, int(free_bytes // (2 * per_token)))
    return min(ceiling, int(available_cpu_memory() * CPU_MEMORY_FRACTION // (2 * per_token)))
