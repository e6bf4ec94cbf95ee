"""PyTorch eager (and torch.compile where it works) on CPU or CUDA."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.backends.base import Availability, InFlight, Placement, Runner, ThreadStreams, split_threads, unavailable
from edgebench.core.errors import IncompatibleError
from edgebench.core.signing import check_artifact

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchRunner(Runner):
    name = "pytorch"
    formats = ("torch",)
    devices = ("cpu", "gpu")
    precisions = ("fp32", "bf16", "fp16")
    extra = "edgebench[torch]"  # on a Jetson: NVIDIA's CUDA torch for JetPack instead (docs/on-device.md)

    @classmethod
    def availability(cls) -> Availability:
        try:
            import torch
        except ImportError as e:
            return unavailable(f"torch is not importable: {e}", cls.extra)
        processors = ("cpu", "gpu") if torch.cuda.is_available() else ("cpu",)
        return Availability(True, version=torch.__version__, processors=processors, precisions=cls.precisions)

    def load(self, artifact: Path, placement: Placement) -> None:
        import torch

        self.placement = placement
        self._streams = int(placement.options.get("streams") or 1)
        threads = split_threads(placement.threads, self._streams)  # shared by concurrent streams in throughput mode
        if threads:
            torch.set_num_threads(threads)
        if placement.processor == "gpu" and not torch.cuda.is_available():
            raise IncompatibleError("pytorch: no CUDA GPU is visible")
        if placement.precision == "fp16" and placement.processor == "cpu":
            raise IncompatibleError("pytorch: fp16 is not supported on the CPU; use fp32 or bf16")
        self.device = torch.device("cuda" if placement.processor == "gpu" else "cpu")
        self.dtype = getattr(torch, _DTYPES[placement.precision])
        # Unpickling runs code: only modules this user's edgebench wrote (signed, or sent with their hash).
        check_artifact(Path(artifact), placement.options.get("sha256"))
        model = torch.load(str(artifact), map_location="cpu", weights_only=False)
        self.model = model.eval().to(self.device, self.dtype)
        if placement.options.get("compile"):
            self.model = torch.compile(self.model)
        self._torch = torch

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            # Positional, in the model's input order (the feed's order); float inputs at the
            # precision measured, token ids and masks as they are.
            args = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in inputs.values()]
            args = [t.to(self.dtype) if t.is_floating_point() else t for t in args]
            return [t.float().cpu().numpy() for t in _flatten_outputs(self.model(*args))]

    def executed_precision(self) -> Optional[str]:
        """The dtype of the loaded module's weights, which eager PyTorch computes in."""
        first = next(iter(self.model.parameters()), None) if self.model is not None else None
        if first is None:
            return None
        return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(str(first.dtype).split(".")[-1])

    def throughput_streams(self) -> InFlight:
        """N threads calling the one module (torch releases the GIL inside its kernels), with
        torch.set_num_threads split between them at load; on a GPU each thread gets its own CUDA
        stream and waits only on it."""
        torch = self._torch

        def call_on(stream):
            def call(feed):
                if stream is None:
                    return self.infer(feed)
                with torch.cuda.stream(stream):
                    out = self.infer(feed)
                    stream.synchronize()
                    return out
            return call

        gpu = self.device.type == "cuda"
        calls = [call_on(torch.cuda.Stream() if gpu else None) for _ in range(self._streams)]
        return ThreadStreams(calls, f"{self._streams} threads on one module, "
                                    f"{'a CUDA stream each' if gpu else f'{torch.get_num_threads()} torch threads'}")

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self._torch.cuda.synchronize()

    def extra_metrics(self, inputs: dict[str, np.ndarray]) -> dict:
        return {"mode": "torch.compile (inductor)" if self.placement.options.get("compile") else "eager",
                "threads": self._torch.get_num_threads()}

    def close(self) -> None:
        self.model = None


def _flatten_outputs(out) -> list:
    """A module's return value (a tensor, a tuple/list of them, or a dict) as a list of tensors."""
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _flatten_outputs(item)]
    return [out]


class TorchCompileRunner(TorchRunner):
    """`torch.compile` (inductor). Compilation happens on the first call, so it shows up as the
    first-inference latency, which is what an application pays. Opt-in: it is only planned when
    asked for with --runtimes, because compiling costs tens of seconds per candidate."""
    name = "torch-compile"
    opt_in = True
    costly_start = True

    @classmethod
    def availability(cls) -> Availability:
        base = TorchRunner.availability()
        if not base.available:
            return base
        import torch

        if not hasattr(torch, "compile"):
            return unavailable(f"torch {torch.__version__} has no torch.compile", "torch>=2.0")
        return base

    def load(self, artifact: Path, placement: Placement) -> None:
        super().load(artifact, Placement(placement.processor, placement.precision, placement.threads,
                                         placement.batch_size, {**placement.options, "compile": True}))
