"""Which torch devices this machine has: ``model.device`` checked before any data, model or cache is built."""

from __future__ import annotations

__all__ = ["check_device_available"]


def check_device_available(device: str, what: str = "model.device") -> None:
    """Raise :class:`~fedsllm_env.errors.DeviceError` unless torch can use ``device`` on this machine ("auto" and
    "cpu" always can); the message names the device and the fix."""
    from fedsllm_env.errors import DeviceError

    if device in ("auto", "cpu"):
        return
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"{what}={device!r} but CUDA is not available on this machine (torch "
                              f"{torch.__version__}); use 'auto' or 'cpu'")
        index = int(device.split(":")[1]) if ":" in device else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"{what}={device!r} but only {count} CUDA device(s) exist (cuda:0 to "
                              f"cuda:{count - 1}); pick one of those, 'auto' or 'cpu'")
    elif device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"{what}={device!r} but MPS is not available on this machine; use 'auto' or 'cpu'")
    else:
        raise DeviceError(f"{what}={device!r} is not a device: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
