"""The environment record of a calibration run: GPU name and count, driver, CUDA, torch, clocks and power."""
from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone

from .. import __version__

SMI_FIELDS = ("index", "name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "power.draw",
              "power.limit", "temperature.gpu", "pstate")


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def nvidia_smi() -> list[dict]:
    """One dict per GPU from `nvidia-smi --query-gpu`; [] where nvidia-smi does not answer."""
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) == len(SMI_FIELDS):
            rows.append(dict(zip(SMI_FIELDS, values)))
    return rows


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(torch, device: str) -> dict:
    """The `environment` object of a results file (results.Environment)."""
    env = {"device": device, "torch": torch.__version__, "python": sys.version.split()[0],
           "platform": platform.platform(), "cpu": _cpu_name(), "costsim": __version__}
    if device == "cuda":
        gpus = nvidia_smi()
        env.update(gpu_name=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(), nodes=1,
                   cuda=torch.version.cuda, gpus=gpus)
        if gpus:
            env["driver"] = gpus[0].get("driver_version")
        env["summary"] = (f"{env['gpu_count']}x {env['gpu_name']}, torch {env['torch']}, CUDA {env['cuda']}"
                          + (f", driver {env['driver']}" if env.get("driver") else ""))
    else:
        env["summary"] = f"CPU {env['cpu']} ({torch.get_num_threads()} threads), torch {env['torch']}"
    return env
