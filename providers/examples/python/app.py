"""python-example: a mining provider written in Python, built with componentize-py.

It shows the whole contract of `openjarvis:mining@0.2.0` (wit/types.wit) without Rust:
`detect` is pure logic over the facts the host passes in, and the lifecycle calls use
the host's imports, whose errors arrive as data (an `Err` exception), never as traps.
It does not mine: `start` says so and points at vllm-pearl.

Build (see README.md): componentize-py -d wit -w mining-provider componentize app -o python-example.wasm
"""

from typing import List, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import clock, log, sidecar
from wit_world.imports.types import (
    Capabilities,
    Capability,
    Error,
    Error_Unavailable,
    HardwareFacts,
    MiningConfig,
    MiningStats,
    ProviderInfo,
)

PROVIDER_ID = "python-example"
MIN_GPU_MIB = 24 * 1024  # 24 GiB, in MiB as NVML reports memory


def describe(error: Error) -> str:
    """The message of a host error, whatever its case (denied, invalid, unavailable, failed)."""
    kind = type(error).__name__.removeprefix("Error_").lower()
    return f"{kind}: {error.value}"


def missing(facts: HardwareFacts) -> List[str]:
    """What this host lacks, in a user's words; empty when it has everything."""
    problems = []
    if facts.os != "linux":
        problems.append(f"needs Linux; this host is '{facts.os or 'unknown'}'")

    nvidia = [gpu for gpu in facts.gpus if gpu.vendor == "nvidia"]
    largest = max((gpu.memory_total_mib or 0 for gpu in nvidia), default=None)
    if largest is None:
        others = sorted({gpu.vendor for gpu in facts.gpus})
        seen = f"detected: {', '.join(others)}" if others else facts.gpu_note or "no GPU detected"
        problems.append(f"no NVIDIA GPU ({seen})")
    elif largest < MIN_GPU_MIB:
        problems.append(f"no NVIDIA GPU with at least 24 GiB (largest: {largest} MiB)")

    if facts.docker.reachable is not True:
        problems.append("Docker is not reachable")
    return problems


class Provider(exports.Provider):
    def info(self) -> ProviderInfo:
        return ProviderInfo(
            id=PROVIDER_ID,
            version="0.1.0",
            description="Example provider in Python (componentize-py): detects, reports stats, never mines",
            capabilities=[Capability.SIDECAR, Capability.METRICS],
        )

    def detect(self, facts: HardwareFacts, engine_id: str, model: str) -> Capabilities:
        # Pure: only the arguments are visible, so the verdict is deterministic.
        problems = missing(facts)
        if problems:
            return Capabilities(supported=False, reason="; ".join(problems), estimated_hashrate=None, notes=[])
        return Capabilities(supported=True, reason=None, estimated_hashrate=None, notes=[])

    def start(self, config: MiningConfig) -> None:
        # A result's error is raised as `Err(error)`; the host receives it as data.
        raise Err(Error_Unavailable("python-example only demonstrates detect and stats; use vllm-pearl to mine"))

    def stop(self) -> None:
        # Nothing was started, so there is nothing to stop.
        return None

    def is_running(self) -> bool:
        # The host keeps the state (the session record); an instance keeps none.
        try:
            return sidecar.read() is not None
        except Err:
            return False

    def stats(self) -> MiningStats:
        # Each import either answers or raises `Err(error)`: denied, invalid, unavailable, failed.
        errors: List[str] = []
        session: Optional[sidecar.Session] = None
        try:
            clock.now()
        except Err as err:
            errors.append(f"clock.now: {describe(err.value)}")
        try:
            session = sidecar.read()
        except Err as err:
            errors.append(f"sidecar.read: {describe(err.value)}")

        state = "a session" if session is not None else "no session"
        log.log(log.Level.INFO, f"{PROVIDER_ID} stats: {state}, {len(errors)} import error(s)")
        return MiningStats(
            provider_id=PROVIDER_ID,
            shares_submitted=0,
            shares_accepted=0,
            shares_rejected=0,
            blocks_found=0,
            hashrate=0.0,
            uptime_seconds=0.0,
            last_share_at=None,
            last_error="; ".join(errors) or None,
            payout_target="solo",
            fees_owed=0,
            requests_served=None,
            prompt_tokens=None,
            generation_tokens=None,
            workers=[],
        )
