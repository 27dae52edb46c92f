"""What machine a timing was measured on: CPU model, instruction sets, cores, threads, torch, commit.

Every timing colorlab records (benchmarks, `make reproduce` budget records)
carries `describe()`, so a number is never quoted without its CPU and ISA.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

# Instruction-set flags of /proc/cpuinfo that decide how fast the networks run here.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.processor(), platform.machine()):
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return model, flags


def isa_summary(flags: set[str]) -> str:
    """"AMX + AVX-512 BF16", "AVX-512 (no BF16)", "AVX2 only", ... from cpuinfo flags."""
    if "amx_bf16" in flags:
        return "AMX + AVX-512 BF16"
    if "avx512_bf16" in flags:
        return "AVX-512 BF16"
    if "avx512f" in flags:
        return "AVX-512 (no BF16)"
    if "avx2" in flags:
        return "AVX2 only"
    return "no AVX2"


def physical_cores() -> int:
    try:
        pairs = {tuple(line.split(":", 1)[1].strip() for line in block.splitlines()
                       if line.startswith(("physical id", "core id")))
                 for block in Path("/proc/cpuinfo").read_text().split("\n\n") if block.strip()}
        return max(1, len(pairs))
    except OSError:
        return os.cpu_count() or 1


def commit(root: Path | None = None) -> str:
    """The git commit of the checkout (with "+dirty" when tracked files outside the repository's results/ differ
    from it, "+unknown" when git cannot say), or "unknown". Records that a study writes under results/ leave the
    next record's commit clean."""
    from colorlab import settings

    root = root or settings.REPO_ROOT
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        outside_results = ["--", ".", ":(exclude)results"]
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", *outside_results],
                                cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if status.returncode != 0:
        return head + "+unknown"
    return head + ("+dirty" if status.stdout.strip() else "")


def describe() -> dict:
    """The machine as a JSON-able dict: cpu, isa, flags, cores, threads, torch, python."""
    import torch

    model, flags = _cpuinfo()
    try:
        native_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native_bf16 = False
    return {"cpu": model, "isa": isa_summary(flags), "isa_flags": sorted(f for f in ISA_FLAGS if f in flags),
            "native_bf16": native_bf16, "physical_cores": physical_cores(), "logical_cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}
