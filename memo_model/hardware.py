"""What the machine can compute natively — facts that inference (pipelines/speed.py) and training (training/train.py)
both decide by."""

import torch


def cpu_bf16_support() -> str | None:
    """The CPU's native bfloat16 support: ``"amx"`` (AMX tiles), ``"avx512_bf16"``, or ``None`` (emulated)."""
    if torch.cpu._is_amx_tile_supported():
        return "amx"
    if torch.cpu._is_avx512_bf16_supported():
        return "avx512_bf16"
    return None


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with AMX / AVX512-BF16."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_bf16_support() is not None
