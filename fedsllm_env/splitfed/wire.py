"""What goes over the air: tensors sent at ``q`` bits per element, as the delay model charges them.

``q`` = :func:`fedsllm_env.profile.wire_bits` (``model.activation_bits`` capped by the compute dtype) for
cut activations and their gradients, ``model.activation_bits`` for LoRA adapters (kept in float32):

* q >= the tensor's own bits: sent as is;
* q = 16 (float32 tensor): rounded to bfloat16 (float32's range, so small gradients do not underflow);
* q = 8: symmetric int8 codes with fp32 absmax scales, one per row (last dimension: per token for
  activations and gradients) or one per tensor (LoRA matrices).

The receiver works with the dequantised tensor, so training sees exactly the compression that is paid for.
``send`` returns it with the number of bytes sent; tests check those bytes against the delay model.
"""

from __future__ import annotations

import torch

from fedsllm_env.profile import QUANT_SCALE_BITS

__all__ = ["send"]


def send(x: torch.Tensor, bits: int, per_row: bool = True) -> tuple[torch.Tensor, int]:
    """(what the receiver gets, bytes sent) for ``x`` sent at ``bits`` per element (32, 16 or 8).

    The result has ``x``'s dtype and device and no autograd history.
    """
    x = x.detach()
    own_bits = x.element_size() * 8
    if bits >= own_bits:
        return x, x.numel() * x.element_size()
    if bits == 16:
        return x.to(torch.bfloat16).to(x.dtype), x.numel() * 2
    if bits != 8:
        raise ValueError(f"wire bits must be 8, 16 or 32, got {bits}")
    rows = x.reshape(-1, x.shape[-1]) if per_row and x.dim() > 0 else x.reshape(1, -1)
    scale = rows.float().abs().amax(dim=1, keepdim=True) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = torch.round(rows.float() / scale).clamp_(-127, 127).to(torch.int8)
    received = (codes.float() * scale).to(x.dtype).reshape(x.shape)
    return received, codes.numel() + scale.numel() * QUANT_SCALE_BITS // 8
