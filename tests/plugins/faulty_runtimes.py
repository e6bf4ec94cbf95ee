"""Runtimes that misbehave on purpose, loaded through EDGEBENCH_PLUGINS, to test isolation.

`crashy` segfaults inside inference (as a native runtime bug would), `hangy` never returns from
load, `leaky` raises an ordinary Python error. They wrap ONNX Runtime so they are otherwise real.
"""
import ctypes
import time

from edgebench.backends import BACKENDS
from edgebench.backends.onnxruntime_runner import OnnxRuntimeRunner


class CrashingRunner(OnnxRuntimeRunner):
    name = "crashy"

    def infer(self, inputs):
        ctypes.string_at(0)  # dereference NULL: SIGSEGV in this process


class HangingRunner(OnnxRuntimeRunner):
    name = "hangy"

    def load(self, artifact, placement):
        time.sleep(3600)


class RaisingRunner(OnnxRuntimeRunner):
    name = "leaky"

    def infer(self, inputs):
        raise MemoryError("pretend the runtime ran out of memory")


for runner in (CrashingRunner, HangingRunner, RaisingRunner):
    BACKENDS.add(runner.name, runner)
