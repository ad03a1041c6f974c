"""Numeric precision, memory layout and host<->device copies shared by every model step.

Why one module: each step offers the same `precision: float32|float16|bfloat16` option and the
same CUDA plumbing (channels-last weights, pinned host buffers, non-blocking copies), so the
rules live here once and a step uses them in a line or two:

    self.place = Placement(device, opts.precision)      # in setup
    self.place.modules(self.net)                        # cast + layout, in place
    x = self.place.images_in(arrays)                    # N HxWx3 float arrays -> NCHW on device
    with self.place.autocast():
        y = self.net(x)
    outs = self.place.images_out(y)                     # NCHW -> N HxWx3 float32 in [0, 1]

float32 is every step's default (it reproduces the official inference). Reduced precision casts
the weights (not only autocast: on this CPU, bfloat16 *weights* run on AMX and are several times
faster, while autocast re-casts them at every call) and runs under `torch.autocast`, so ops the
autocast lists keep in float32 (norms, softmax on CUDA) still run in float32. Outputs always leave
as float32 (H, W, 3) in [0, 1], the host contract.

The CUDA branches (pinned buffers, non-blocking copies, stream sync) are untested on CUDA: no GPU
was lent to the machines this was written on. CPU runs every other line.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

Precision = Literal["float32", "float16", "bfloat16"]
PRECISION_HELP = ("float32 (default, the official numbers) | float16 | bfloat16: weights and compute in that "
                  "dtype under autocast; on CPU bfloat16 is fast where the CPU has AMX/avx512_bf16 (see docs/gpu.md)")


CPU_PIXELS_PER_PASS = 2 << 20
"""On CPU, same-size frames go through a conv net in passes of at most this many pixels. Why:
past that the activations stop fitting the caches and a frame costs more, not less: AdaIN at
1024 px 3.28 s per frame in passes of 4 vs 2.81 in passes of 2 and 2.79 alone; fast_style at
720p 1.59 s vs 1.12 / 1.23; at 512 px and below passes of 4 cost the same as 1 or less
(benchmarks/README.md, "Channels-last eager nets")."""


def same_size_passes(shapes: Sequence[tuple[int, ...]], max_pixels: int | None = None) -> list[list[int]]:
    """Indices of frames grouped by shape (in first-seen order), each group cut into passes of at
    most `max_pixels` pixels (at least one frame a pass); None = one pass per shape."""
    passes: list[list[int]] = []
    for shape in dict.fromkeys(shapes):
        same = [i for i, s in enumerate(shapes) if s == shape]
        per = len(same) if max_pixels is None else max(1, max_pixels // max(1, shape[0] * shape[1]))
        passes += [same[i:i + per] for i in range(0, len(same), per)]
    return passes


def dtype_of(precision: str) -> torch.dtype:
    """The torch dtype named by a `precision` option value."""
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[precision]


class Placement:
    """Where and how one step's networks run: device, compute dtype, memory layout."""

    def __init__(self, device: str, precision: str = "float32", channels_last: bool = True):
        import torch

        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.dtype = dtype_of(precision)
        self.channels_last = channels_last
        self._pinned: dict[tuple, torch.Tensor] = {}  # host staging buffers by shape (CUDA only)

    @property
    def reduced(self) -> bool:
        import torch

        return self.dtype != torch.float32

    def modules(self, *modules: Any) -> None:
        """eval() + move + cast + layout, in place. Non-conv nets ignore channels-last."""
        import torch

        for module in modules:
            module.eval().to(device=self.device, dtype=self.dtype)
            if self.channels_last:
                module.to(memory_format=torch.channels_last)

    def passes(self, shapes: Sequence[tuple[int, ...]], cpu_pixels: int | None = None) -> list[list[int]]:
        """Indices of frames (given their HxWxC shapes) in the groups that run through a network
        together: same shape, and on CPU at most `cpu_pixels` (default `CPU_PIXELS_PER_PASS`)
        pixels a group; on CUDA one group per shape (bigger batches keep a GPU busy; untested on CUDA)."""
        return same_size_passes(shapes, None if self.cuda else cpu_pixels or CPU_PIXELS_PER_PASS)

    def autocast(self) -> contextlib.AbstractContextManager:
        """`torch.autocast` for reduced precision (keeps autocast's float32 ops in float32); no-op for float32."""
        import torch

        if not self.reduced:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def tensor_in(self, x: torch.Tensor) -> torch.Tensor:
        """A host tensor on the device in the compute dtype (and layout for 4-D inputs)."""
        import torch

        if self.cuda:
            x = x.pin_memory() if not x.is_pinned() else x  # untested on CUDA
            x = x.to(self.device, non_blocking=True)
        x = x.to(self.dtype)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        return x

    def frame_in(self, image: np.ndarray, pad_to: int = 1) -> torch.Tensor:
        """One HxWx3 frame, uint8 from the decoder or float32 in [0, 1] -> 1x3xHxW on the device
        in the compute dtype and layout, reflect-padded at the bottom and right to a multiple of
        `pad_to` (what strided conv nets need; crop the output back to H x W).

        Why: numpy's conversion of a 720p frame (cast, scale, transpose) is three single-threaded
        passes; here it is one threaded cast-and-copy plus an in-place scale, with the same
        float32 values as `stylefarm.item.as_float` (x * float32(1/255)). On CUDA the uint8 frame
        is uploaded (4x fewer bytes) and converted there (untested on CUDA).
        """
        import torch

        with warnings.catch_warnings():  # frames are frozen read-only by the host; this only reads them
            warnings.simplefilter("ignore", UserWarning)
            hwc = torch.from_numpy(np.ascontiguousarray(image))
        if self.cuda:  # untested on CUDA
            hwc = hwc.pin_memory().to(self.device, non_blocking=True)
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        x = torch.empty((1, 3, *hwc.shape[:2]), dtype=torch.float32, device=self.device, memory_format=layout)
        x.copy_(hwc.permute(2, 0, 1)[None])
        if image.dtype == np.uint8:
            x.mul_(1 / 255)
        h, w = image.shape[:2]
        if h % pad_to or w % pad_to:
            x = torch.nn.functional.pad(x, (0, -w % pad_to, 0, -h % pad_to), mode="reflect")
            x = x.contiguous(memory_format=layout)  # as traced by a compiled package
        return x if not self.reduced else x.to(self.dtype)

    def frame_out(self, out: torch.Tensor, as_uint8: bool) -> np.ndarray:
        """1x3xHxW (or 3xHxW) -> HxWx3: uint8 rounded exactly as the sinks quantize floats
        (x * 255 + 0.5, clipped, truncated) in one threaded pass, or float32 clipped to [0, 1]."""
        import torch

        chw = out.detach()[0] if out.dim() == 4 else out.detach()
        if as_uint8:
            scaled = chw.float().mul(255.0).add_(0.5).clamp_(0.0, 255.0)
            hwc = torch.empty((*chw.shape[1:], 3), dtype=torch.uint8, device=chw.device)
            hwc.copy_(scaled.permute(1, 2, 0))
        else:
            hwc = chw.float().clamp(0, 1).permute(1, 2, 0).contiguous()
        return hwc.cpu().numpy()  # a CUDA tensor waits for its kernels here (untested on CUDA)

    def images_in(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Same-size HxWx3 float arrays -> N x 3 x H x W on the device.

        Stacked once as NHWC, so the NCHW view is already channels-last (no layout copy);
        on CUDA the stack goes into a reused pinned buffer and is copied without blocking.
        """
        import torch

        if not self.cuda:
            return self.tensor_in(torch.from_numpy(np.stack(images).astype(np.float32, copy=False))
                                  .permute(0, 3, 1, 2))
        host = self._staging((len(images), *images[0].shape))  # untested on CUDA
        for i, image in enumerate(images):
            host[i].copy_(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)))
        x = host.to(self.device, non_blocking=True).permute(0, 3, 1, 2).to(self.dtype)
        return x if self.channels_last else x.contiguous()

    def _staging(self, shape: tuple) -> torch.Tensor:
        """A pinned float32 host buffer of `shape`, allocated once per shape (untested on CUDA).

        Reusing it waits for the device's current stream first: filling the buffer is a host
        copy that runs at once, so without the wait it could overwrite a batch whose
        non-blocking upload has not finished. Between passes it costs little: reading the
        previous pass's results back to the host has already waited for its kernels."""
        import torch

        if shape not in self._pinned:
            if len(self._pinned) > 8:  # many frame sizes: do not hoard pinned memory
                self._pinned.clear()
            self._pinned[shape] = torch.empty(shape, dtype=torch.float32, pin_memory=True)
        else:
            torch.cuda.current_stream(self.device).synchronize()
        return self._pinned[shape]

    def images_out(self, out: torch.Tensor) -> list[np.ndarray]:
        """N x 3 x H x W (any dtype/layout/device) -> N float32 HxWx3 arrays clipped to [0, 1]."""
        import torch

        nhwc = out.detach().float().clamp(0, 1).permute(0, 2, 3, 1)
        if self.cuda:  # untested on CUDA
            host = torch.empty(nhwc.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(nhwc, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
        else:
            host = nhwc.contiguous()  # channels-last outputs are NHWC already: no copy
        arr = host.numpy()
        return [arr[i] for i in range(arr.shape[0])]


class FloatIO:
    """Runs a network in `place`'s precision but takes and returns float32 tensors.

    For steps whose surrounding maths should stay float32 (Paint Transformer's renderer,
    a loss network's targets): only the network itself runs reduced."""

    def __init__(self, module: Any, place: Placement):
        self.module, self.place = module, place

    def __call__(self, *args: Any) -> Any:
        import torch

        if not self.place.reduced:
            return self.module(*args)
        with self.place.autocast():
            out = self.module(*[a.to(self.place.dtype) if torch.is_tensor(a) and a.is_floating_point() else a
                                for a in args])
        return _to_float(out)

    def __getattr__(self, name: str) -> Any:  # attributes of the wrapped network
        return getattr(self.module, name)


def _to_float(out: Any) -> Any:
    import torch

    if torch.is_tensor(out):
        return out.float()
    if isinstance(out, (list, tuple)):
        return type(out)(_to_float(o) for o in out)
    return out


@contextlib.contextmanager
def inference(place: Placement) -> Iterator[None]:
    """inference_mode + autocast of `place`: the context every model forward runs in."""
    import torch

    with torch.inference_mode(), place.autocast():
        yield
