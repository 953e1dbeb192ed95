"""jarvis-mine's Pearl miner loop: asks pearl-gateway for work, finds proofs, submits them.

The ``jarvis`` binary embeds this file, writes it to disk and runs it next to
``pearl-gateway start`` for the cpu-pearl and apple-mps-pearl providers:

    python3 -u pearl_miner_loop.py --backend cpu|mps --gateway-host H --gateway-port P \
        --m M --n N --k K --rank R [--connect-timeout-seconds 30] [--connect-retry-seconds 0.25]

When --m/--n/--k/--rank are not given they default by backend: cpu 256/128/1024/32,
mps 128/128/1024/64 (OpenJarvis's defaults).

Protocol (pearl-gateway's miner RPC): TCP to the gateway's loopback port, newline-delimited
JSON-RPC 2.0, one response line per request.

* ``getMiningInfo`` with params ``{}`` returns a job: ``incomplete_header_bytes`` (base64),
  ``target`` (int) and, on current gateways, ``cert_version`` and ``ancestor_headers``.
* ``submitPlainProof`` with params ``{"plain_proof": <base64>, "mining_job": <the job>}``
  returns ``"submitted"``. The job goes back exactly as it was received: the gateway's
  schema requires ``cert_version`` in it, and rebuilding the job from the two fields the
  miner uses (as OpenJarvis's loop did) drops that field.
* An ``error`` object in a response rejects the request; code -32001 ``mining_paused``
  means the gateway has no block template yet (node unreachable or syncing).

Compared with OpenJarvis's ``_miner_loop_main`` and ``_mps_miner_loop_main`` (reference
spec section 11.6, item 11), this loop:

* reconnects, at the retry interval, whenever the gateway closes the socket or the
  connection fails, instead of failing every round forever while its PID looks alive;
  if the gateway stays away for the whole connect timeout, the loop exits 1 so that the
  host sees a dead miner rather than a live one that does nothing;
* starts the next MPS search round at once after an unsuccessful one (no 1 s sleep);
* runs every blocking call (``pearl_mining.mine()``, the PyTorch work, the slow package
  imports) on a worker thread, so the event loop keeps answering SIGTERM and SIGINT,
  which end the loop with exit status 0.

Log lines the host counts (the message starts with exactly this text):

* ``connected to pearl-gateway at H:P``
* ``share submitted`` then ``share accepted`` when a submission gets a non-error answer
* ``share rejected: <code> <message>`` when it gets an error answer
* ``gateway connection lost, reconnecting`` once per lost connection
* ``mining paused by pearl-gateway`` on a -32001 answer to getMiningInfo
* ``stopping`` on SIGTERM or SIGINT

The pure parts (argument parsing, JSON-RPC framing, job parsing, submit parameters, the
NoisyGemm shape check) are plain functions that need no Pearl package, so
``tests/python/test_pearl_miner_loop.py`` can test them directly. Standard library only;
Pearl's packages and PyTorch are imported lazily, on the worker thread.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import copy
import importlib
import json
import logging
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence

LOG = logging.getLogger("jarvis.pearl_miner_loop")
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"

DEFAULT_GATEWAY_HOST = "127.0.0.1"
DEFAULT_GATEWAY_PORT = 8337  # pearl-gateway's MINER_RPC_PORT default
CONNECT_TIMEOUT_SECONDS = 30.0
CONNECT_RETRY_SECONDS = 0.25
# Wait after a failed round (error answer, rejected share, exception) before the next:
# long enough not to spin against a gateway that keeps failing, short enough not to idle.
FAILURE_BACKOFF_SECONDS = 1.0

MINING_PAUSED_CODE = -32001
# pearl-gateway reads requests with a 4 MiB line limit; answers are far smaller, but a
# job with many ancestor headers must not trip asyncio's 64 KiB default.
READ_LIMIT_BYTES = 4 * 1024 * 1024

# Row/column patterns of the CPU search (OpenJarvis's CPU_PEARL_DEFAULT_*_PATTERN).
CPU_ROWS_PATTERN = (0, 8, 64, 72)
CPU_COLS_PATTERN = (0, 1, 8, 9, 32, 33, 40, 41)
# The MPS search uses dense 16-wide patterns, matching its 16x16 hash tiles.
MPS_PATTERN = tuple(range(16))

# NoisyGemm parameters of the MPS search (OpenJarvis's _mps_miner_loop_main).
MPS_NOISE_RANGE = 128
MPS_HASH_TILE = 16
# int7 operands: uniformly random values in [-64, 63].
INT7_LOW, INT7_HIGH = -64, 64


class Shape(NamedTuple):
    m: int
    n: int
    k: int
    rank: int


BACKEND_DEFAULTS: Dict[str, Shape] = {
    "cpu": Shape(m=256, n=128, k=1024, rank=32),
    "mps": Shape(m=128, n=128, k=1024, rank=64),
}

# Which distribution to install when an import fails, for the error message.
PACKAGE_HINTS = {
    "pearl_mining": "py-pearl-mining (built from Pearl's py-pearl-mining with maturin)",
    "miner_base": "Pearl's miner-base",
    "pearl_gateway": "Pearl's pearl-gateway",
    "torch": "PyTorch with MPS support",
}


# --------------------------------------------------------------------------------------
# Errors


class ProtocolError(Exception):
    """The gateway's byte stream is not the protocol: the connection cannot be trusted."""


class JobError(ValueError):
    """A getMiningInfo result without a usable job (the connection itself is fine)."""


class FatalError(Exception):
    """Mining cannot go on (packages missing, gateway gone): exit 1 with this message."""


# --------------------------------------------------------------------------------------
# Arguments


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port (1-65535), got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pearl_miner_loop.py",
        description="Mine Pearl through a local pearl-gateway (jarvis-mine's miner loop).",
    )
    parser.add_argument("--backend", choices=sorted(BACKEND_DEFAULTS), default="cpu",
                        help="cpu: pearl_mining.mine(); mps: miner_base NoisyGemm on PyTorch MPS")
    parser.add_argument("--gateway-host", default=DEFAULT_GATEWAY_HOST)
    parser.add_argument("--gateway-port", type=_port, default=DEFAULT_GATEWAY_PORT)
    # None means "the backend's default", filled in by parse_args.
    parser.add_argument("--m", type=_positive_int, default=None, help="rows of A (cpu 256, mps 128)")
    parser.add_argument("--n", type=_positive_int, default=None, help="columns of B (cpu 128, mps 128)")
    parser.add_argument("--k", type=_positive_int, default=None, help="common dimension (1024)")
    parser.add_argument("--rank", type=_positive_int, default=None, help="noise rank (cpu 32, mps 64)")
    parser.add_argument("--connect-timeout-seconds", type=_positive_float, default=CONNECT_TIMEOUT_SECONDS,
                        help="give up (exit 1) when the gateway cannot be reached for this long")
    parser.add_argument("--connect-retry-seconds", type=_positive_float, default=CONNECT_RETRY_SECONDS,
                        help="wait between connection attempts")
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line; shape flags left out take the backend's defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    defaults = BACKEND_DEFAULTS[args.backend]
    for field in Shape._fields:
        if getattr(args, field) is None:
            setattr(args, field, getattr(defaults, field))
    if args.backend == "mps":
        # Refuse a shape the NoisyGemm adapter would reject on every round.
        try:
            check_noisy_gemm_shapes(args.m, args.n, MPS_HASH_TILE, MPS_HASH_TILE, args.rank)
        except ValueError as exc:
            parser.error(f"--backend mps: {exc}")
    return args


# --------------------------------------------------------------------------------------
# JSON-RPC framing


def make_request(method: str, params: Dict[str, Any], request_id: int) -> Dict[str, Any]:
    """A JSON-RPC 2.0 request envelope, as pearl-gateway's schema accepts it."""
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}


def encode_message(message: Dict[str, Any]) -> bytes:
    """One protocol line: compact JSON (never containing a newline) plus ``\\n``."""
    return json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"


def decode_message(line: bytes) -> Dict[str, Any]:
    """Parse one response line into a JSON object, or raise ProtocolError."""
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"gateway sent a line that is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"gateway sent JSON that is not an object: {type(message).__name__}")
    if "error" not in message and "result" not in message:
        raise ProtocolError("gateway response has neither 'result' nor 'error'")
    return message


class RpcError(NamedTuple):
    code: Optional[int]
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}" if self.code is not None else self.message


def rpc_error(response: Dict[str, Any]) -> Optional[RpcError]:
    """The error of a response, or None when it carries a result."""
    error = response.get("error")
    if error is None:
        return None
    if isinstance(error, dict):
        code = error.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        return RpcError(code, str(error.get("message", "")))
    return RpcError(None, str(error))


# --------------------------------------------------------------------------------------
# Jobs and submissions


@dataclass(frozen=True)
class Job:
    header: bytes  # incomplete_header_bytes, decoded
    target: int
    raw: Dict[str, Any]  # the job object exactly as received, sent back on submit


def parse_job(result: Any) -> Job:
    """Read the fields the miner needs from a getMiningInfo result, keeping the rest."""
    if not isinstance(result, dict):
        raise JobError(f"getMiningInfo result is not an object: {result!r}")
    header_b64 = result.get("incomplete_header_bytes")
    if not isinstance(header_b64, str):
        raise JobError("getMiningInfo result lacks incomplete_header_bytes")
    try:
        header = base64.b64decode(header_b64, validate=True)
    except (binascii.Error, ValueError):
        raise JobError("incomplete_header_bytes is not base64") from None
    target = result.get("target")
    if isinstance(target, bool) or not isinstance(target, (int, str)):
        raise JobError(f"getMiningInfo target is not an integer: {target!r}")
    try:
        target = int(target)
    except ValueError:
        raise JobError(f"getMiningInfo target is not an integer: {target!r}") from None
    return Job(header=header, target=target, raw=copy.deepcopy(result))


def submit_params(plain_proof_b64: str, job: Job) -> Dict[str, Any]:
    """submitPlainProof params: the proof and the job as it was received, every field kept."""
    return {"plain_proof": plain_proof_b64, "mining_job": copy.deepcopy(job.raw)}


# --------------------------------------------------------------------------------------
# MPS NoisyGemm adapter


def check_noisy_gemm_shapes(m: int, n: int, hash_tile_h: int, hash_tile_w: int, noise_rank: int) -> None:
    """Raise ValueError for shapes the tiled NoisyGemm cannot hash (upstream's own check).

    Output tiles are ``noise_rank`` square and each must hold at least one hash tile.
    """
    if m < hash_tile_h or n < hash_tile_w or noise_rank < min(hash_tile_h, hash_tile_w):
        raise ValueError(
            f"m={m}, n={n}, hash_tile_h={hash_tile_h}, hash_tile_w={hash_tile_w}, "
            f"noise_rank={noise_rank}: matmul tile should be larger than hash tile and noise rank"
        )


def make_mps_noisy_gemm_class(noisy_gemm_cls: type, torch: Any, transcript_cls: type) -> type:
    """Subclass upstream ``miner_base`` NoisyGemm so its work stays on the inputs' device.

    Upstream NoisyGemm is a CPU reference: it allocates its accumulators on the CPU, so
    MPS inputs would be mixed with CPU tensors. This subclass keeps the accumulators on
    the input device and runs int32 matmuls of ``rank``-wide slices there (output tile =
    rank x rank). Only the transcript hashing leaves the device: upstream's InnerHasher
    is NumPy/BLAKE3, so each C block is copied to the CPU just for hashing.

    ``torch`` and ``transcript_cls`` are passed in (rather than imported here) so tests
    can exercise the shape checks with stand-ins.
    """

    class MpsNoisyGemm(noisy_gemm_cls):  # type: ignore[misc, valid-type]
        def _accumulate_transcripts(self, transcripts, reduction_count, C_block):  # noqa: N803
            # The hasher reads the block through NumPy, which needs CPU memory.
            return super()._accumulate_transcripts(transcripts, reduction_count, C_block.detach().cpu())

        def _process_output_tile(self, A, B, k, i, i_max, j, j_max):  # noqa: N803
            block_h, block_w = i_max - i, j_max - j
            tile_h, tile_w = self.inner_hash.tile_h, self.inner_hash.tile_w
            transcripts = [
                [transcript_cls() for _ in range(block_w // tile_w)] for _ in range(block_h // tile_h)
            ]
            C_block = torch.zeros((block_h, block_w), dtype=torch.int32, device=A.device)  # noqa: N806
            reduction_count = 0
            has_full_tiles = False
            for p in range(0, k, self.noise_rank):
                p_max = min(p + self.noise_rank, k)
                # int8 matmul is not supported on every device; int32 is exact for int7.
                C_block += torch.matmul(A[i:i_max, p:p_max].to(torch.int32), B[p:p_max, j:j_max].to(torch.int32))
                # Only complete rank-deep reductions over whole hash tiles are hashed.
                if block_h >= tile_h and block_w >= tile_w and p_max - p == self.noise_rank:
                    self._accumulate_transcripts(
                        transcripts=transcripts, reduction_count=reduction_count, C_block=C_block
                    )
                    reduction_count += 1
                    has_full_tiles = True
            return C_block, has_full_tiles, transcripts

        def _tiled_matmul(self, A, B, pow_key, pow_target):  # noqa: N803
            if A.shape[1] != B.shape[0]:
                raise ValueError(f"inner dimensions differ: A is {tuple(A.shape)}, B is {tuple(B.shape)}")
            m, k = A.shape
            n = B.shape[1]
            check_noisy_gemm_shapes(m, n, self.inner_hash.tile_h, self.inner_hash.tile_w, self.noise_rank)
            C = torch.zeros((m, n), dtype=torch.int32, device=A.device)  # noqa: N806
            found = False
            for i in range(0, m, self.noise_rank):
                i_max = min(i + self.noise_rank, m)
                for j in range(0, n, self.noise_rank):
                    j_max = min(j + self.noise_rank, n)
                    C_block, has_full_tiles, transcripts = self._process_output_tile(A, B, k, i, i_max, j, j_max)  # noqa: N806
                    # The first winning tile is the one upstream opens for the proof.
                    if not found and has_full_tiles:
                        found = self._check_tile_transcripts(transcripts, i, j, pow_key, pow_target)
                    C[i:i_max, j:j_max] = C_block
            return C, found

    MpsNoisyGemm.Transcript = transcript_cls
    return MpsNoisyGemm


class MpsNoisyGemmAdapter:
    """Builds the device-safe NoisyGemm: ``MpsNoisyGemmAdapter.build(NoisyGemm, **kwargs)``."""

    @staticmethod
    def build(noisy_gemm_cls: type, **kwargs: Any) -> Any:
        import torch
        from miner_base.noisy_gemm import Transcript

        return make_mps_noisy_gemm_class(noisy_gemm_cls, torch, Transcript)(**kwargs)


# --------------------------------------------------------------------------------------
# Backends (their methods run on the worker thread)


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        hint = PACKAGE_HINTS.get(name.split(".")[0], name)
        raise FatalError(f"{name} is not importable ({exc}); install {hint}") from None


def build_mining_config(pearl_mining: Any, *, k: int, rank: int, rows: Sequence[int], cols: Sequence[int]) -> Any:
    """The int7 MiningConfiguration for a search of inner dimension ``k``."""
    return pearl_mining.MiningConfiguration(
        common_dim=k,
        rank=rank,
        mma_type=pearl_mining.MMAType.Int7xInt7ToInt32,
        rows_pattern=pearl_mining.PeriodicPattern.from_list(list(rows)),
        cols_pattern=pearl_mining.PeriodicPattern.from_list(list(cols)),
        reserved=pearl_mining.MiningConfiguration.RESERVED,
    )


class CpuBackend:
    """Proofs from Pearl's pure-Rust ``pearl_mining.mine()``."""

    name = "cpu"

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self._pearl_mining: Any = None

    def prepare(self) -> None:
        self._pearl_mining = _import("pearl_mining")

    def search(self, job: Job) -> Optional[str]:
        pm = self._pearl_mining
        m, n, k, rank = self.shape
        # Header and configuration are built on the thread that mines with them: PyO3
        # objects may be bound to the thread that created them.
        header = pm.IncompleteBlockHeader.from_bytes(job.header)
        config = build_mining_config(pm, k=k, rank=rank, rows=CPU_ROWS_PATTERN, cols=CPU_COLS_PATTERN)
        proof = pm.mine(m, n, k, header, config, signal_range=None, wrong_jackpot_hash=False)
        return None if proof is None else proof.to_base64()


class MpsBackend:
    """Proofs from upstream ``miner_base`` NoisyGemm run on PyTorch's MPS device."""

    name = "mps"

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self._modules: Dict[str, Any] = {}

    def prepare(self) -> None:
        modules = {
            name: _import(name)
            for name in (
                "pearl_mining",
                "torch",
                "miner_base.block_submission",
                "miner_base.commitment_hash",
                "miner_base.noise_generation",
                "miner_base.noisy_gemm",
                "pearl_gateway.comm.dataclasses",
            )
        }
        mps = getattr(getattr(modules["torch"], "backends", None), "mps", None)
        if mps is None or not mps.is_available():
            raise FatalError("PyTorch MPS is not available on this machine; use --backend cpu")
        self._modules = modules

    def _gateway_job(self, job: Job) -> Any:
        mining_job_cls = self._modules["pearl_gateway.comm.dataclasses"].MiningJob
        # Current gateways' MiningJob carries cert_version and ancestor headers; build it
        # from the job as received when the class can, else from the two classic fields.
        if hasattr(mining_job_cls, "from_dict"):
            return mining_job_cls.from_dict(copy.deepcopy(job.raw))
        return mining_job_cls(incomplete_header_bytes=job.header, target=job.target)

    def search(self, job: Job) -> Optional[str]:
        """One random search round; None when it finds nothing (the caller goes straight on)."""
        mods = self._modules
        torch = mods["torch"]
        m, n, k, rank = self.shape
        config = build_mining_config(mods["pearl_mining"], k=k, rank=rank, rows=MPS_PATTERN, cols=MPS_PATTERN)
        adjusted_target = self._gateway_job(job).adjust_target(config)

        # A and B are made on the CPU, where commitment hashing and proof building run
        # (NumPy/BLAKE3 upstream), and copied to MPS for the matmul.
        device = torch.device("mps")
        A = torch.randint(INT7_LOW, INT7_HIGH, (m, k), dtype=torch.int8)  # noqa: N806
        B = torch.randint(INT7_LOW, INT7_HIGH, (k, n), dtype=torch.int8)  # noqa: N806
        commitment = mods["miner_base.commitment_hash"].CommitmentHasher.commitment_hash(A, B, job.header, config)
        noise = mods["miner_base.noise_generation"].NoiseGenerator(
            noise_rank=rank, noise_range=MPS_NOISE_RANGE
        ).generate_noise_metrices(  # sic: upstream's spelling
            key_A=commitment.noise_seed_A,
            key_B=commitment.noise_seed_B,
            A_rows=m,
            common_dim=k,
            B_cols=n,
        )
        gemm = MpsNoisyGemmAdapter.build(
            mods["miner_base.noisy_gemm"].NoisyGemm,
            noise_range=MPS_NOISE_RANGE,
            noise_rank=rank,
            hash_tile_h=MPS_HASH_TILE,
            hash_tile_w=MPS_HASH_TILE,
            matmul_tile_h=rank,
            matmul_tile_w=rank,
        )
        E_AL, E_AR, E_BL, E_BR = (tensor.to(device) for tensor in noise)  # noqa: N806
        _, found = gemm.noisy_gemm(
            A.to(device), B.to(device), E_AL, E_AR, E_BL, E_BR,
            commitment_hash=commitment, pow_target=adjusted_target,
        )
        if not found:
            return None
        opened = gemm.get_opened_block_info()
        if opened is None:
            raise RuntimeError("NoisyGemm reported found=True without opened block info")
        return mods["miner_base.block_submission"].create_proof(opened, job.header).to_base64()


def make_backend(args: argparse.Namespace) -> Any:
    shape = Shape(args.m, args.n, args.k, args.rank)
    return CpuBackend(shape) if args.backend == "cpu" else MpsBackend(shape)


# --------------------------------------------------------------------------------------
# Worker thread


class DaemonWorker:
    """Runs blocking calls, one at a time, on a single daemon thread for the event loop.

    Why not ``asyncio.to_thread``: the default executor's threads are joined when
    ``asyncio.run`` finishes and again at interpreter exit, so SIGTERM during a long
    ``mine()`` would hold the exit until the search ends, past the 2 s the host waits
    before SIGKILL. A daemon thread is not joined: on shutdown its result is dropped.
    One thread also keeps every Pearl/PyTorch object on the thread that created it.
    """

    def __init__(self) -> None:
        self._jobs: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="pearl-miner-worker", daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future, fn, args))
        return await future

    def _serve(self) -> None:
        while True:
            loop, future, fn, args = self._jobs.get()
            try:
                outcome = (True, fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:
                pass  # the loop has closed: the process is exiting and nobody waits


def _settle(future: "asyncio.Future[Any]", outcome: Any) -> None:
    if future.done():  # cancelled by shutdown while the call ran
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


# --------------------------------------------------------------------------------------
# Gateway connection


class GatewayConnection:
    """One TCP connection to pearl-gateway; ``call`` sends a request and reads its answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._next_id = 0

    @classmethod
    async def open(cls, host: str, port: int, *, timeout: float, retry: float) -> "GatewayConnection":
        """Connect, retrying every ``retry`` seconds; FatalError once ``timeout`` has passed."""
        deadline = time.monotonic() + timeout
        last_error: Optional[BaseException] = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                detail = f" (last error: {last_error})" if last_error else ""
                raise FatalError(f"timed out connecting to pearl-gateway at {host}:{port}{detail}")
            try:
                # The per-attempt bound keeps a black-holed SYN from outliving the deadline.
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, limit=READ_LIMIT_BYTES), timeout=remaining
                )
                return cls(reader, writer)
            except (OSError, asyncio.TimeoutError) as exc:
                last_error = exc
            await asyncio.sleep(min(retry, max(deadline - time.monotonic(), 0)))

    async def call(self, method: str, params: Dict[str, Any]) -> Dict[str, Any]:
        request_id = self._next_id
        self._next_id += 1
        self._writer.write(encode_message(make_request(method, params, request_id)))
        await self._writer.drain()
        try:
            line = await self._reader.readline()
        except ValueError as exc:  # a line over READ_LIMIT_BYTES
            raise ProtocolError(f"gateway response too long: {exc}") from None
        if not line:
            raise ConnectionError("gateway closed the connection")
        if not line.endswith(b"\n"):
            raise ConnectionError("gateway closed the connection in the middle of a response")
        response = decode_message(line)
        # Parse errors are answered with id null; any other id must be ours, or the
        # stream is out of step and only a new connection can fix it.
        answered = response.get("id")
        if answered is not None and answered != request_id:
            raise ProtocolError(f"gateway answered request {answered!r}, expected {request_id}")
        return response

    async def close(self) -> None:
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), timeout=1.0)
        except (OSError, asyncio.TimeoutError):
            pass


# Failures that mean the connection is gone or unusable: reconnect.
LINK_ERRORS = (ConnectionError, OSError, ProtocolError, asyncio.IncompleteReadError)


# --------------------------------------------------------------------------------------
# Mining


async def mine_round(conn: GatewayConnection, backend: Any, worker: DaemonWorker) -> None:
    """Fetch one job, search it, submit what was found; sleep only after a failure."""
    info = await conn.call("getMiningInfo", {})
    error = rpc_error(info)
    if error is not None:
        if error.code == MINING_PAUSED_CODE:
            LOG.info("mining paused by pearl-gateway: %s; retrying in %g s", error, FAILURE_BACKOFF_SECONDS)
        else:
            LOG.warning("getMiningInfo failed: %s; retrying in %g s", error, FAILURE_BACKOFF_SECONDS)
        await asyncio.sleep(FAILURE_BACKOFF_SECONDS)
        return
    try:
        job = parse_job(info.get("result"))
    except JobError as exc:
        LOG.warning("unusable job from pearl-gateway: %s; retrying in %g s", exc, FAILURE_BACKOFF_SECONDS)
        await asyncio.sleep(FAILURE_BACKOFF_SECONDS)
        return

    try:
        proof = await worker.call(backend.search, job)
    except Exception:  # noqa: BLE001 - a failed search must not end the miner
        LOG.exception("mining round failed; retrying in %g s", FAILURE_BACKOFF_SECONDS)
        await asyncio.sleep(FAILURE_BACKOFF_SECONDS)
        return
    if proof is None:
        # An unsuccessful search round is normal on MPS: start the next one at once.
        return

    answer = await conn.call("submitPlainProof", submit_params(proof, job))
    error = rpc_error(answer)
    if error is not None:
        LOG.warning("share rejected: %s", error)
        await asyncio.sleep(FAILURE_BACKOFF_SECONDS)
        return
    LOG.info("share submitted")
    LOG.info("share accepted")


async def run_miner(args: argparse.Namespace, worker: DaemonWorker) -> None:
    """Mine until cancelled; reconnect whenever the gateway connection is lost."""
    backend = make_backend(args)
    # Imports run on the worker: torch takes seconds, and signals must still be heard.
    await worker.call(backend.prepare)
    host, port = args.gateway_host, args.gateway_port
    LOG.info(
        "pearl miner loop (backend %s, m=%d n=%d k=%d rank=%d) connecting to pearl-gateway at %s:%d",
        backend.name, args.m, args.n, args.k, args.rank, host, port,
    )
    while True:
        conn = await GatewayConnection.open(
            host, port, timeout=args.connect_timeout_seconds, retry=args.connect_retry_seconds
        )
        LOG.info("connected to pearl-gateway at %s:%d", host, port)
        try:
            while True:
                await mine_round(conn, backend, worker)
        except LINK_ERRORS as exc:
            LOG.warning("gateway connection lost, reconnecting (%s)", str(exc) or type(exc).__name__)
        finally:
            await conn.close()
        await asyncio.sleep(args.connect_retry_seconds)


async def main_async(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    worker = DaemonWorker()
    mining = asyncio.create_task(run_miner(args, worker), name="pearl-miner")
    stopping = asyncio.create_task(stop.wait(), name="pearl-miner-stop")
    await asyncio.wait({mining, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        LOG.info("stopping")
        mining.cancel()
        try:
            await mining
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - we are leaving anyway
            LOG.exception("error while stopping")
        return 0
    stopping.cancel()
    try:
        mining.result()
    except FatalError as exc:
        LOG.error("%s", exc)
        return 1
    except Exception:  # noqa: BLE001 - report it in the log the host keeps
        LOG.exception("miner loop failed")
        return 1
    LOG.error("miner loop ended unexpectedly")
    return 1


class _Stop(Exception):
    """SIGTERM that arrived before the event loop took over signal handling."""


def _early_stop(signum: int, frame: Any) -> None:
    raise _Stop()


def configure_logging() -> None:
    # Line-buffered even without -u: the host tails the log file and counts lines.
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stdout)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    configure_logging()
    # Until asyncio installs its handlers, SIGTERM must not kill us with status -15.
    signal.signal(signal.SIGTERM, _early_stop)
    try:
        return asyncio.run(main_async(args))
    except (KeyboardInterrupt, _Stop):
        LOG.info("stopping")
        return 0


if __name__ == "__main__":
    sys.exit(main())
