"""Tests of the Pearl miner loop and of the test pearl-gateway it mines against.

Run from the repository root (standard library only, Python 3.11+):

    PYTHONPATH=tests/fixtures/pearl/python python3 -m unittest discover -s tests/python -v

Unit tests load ``runtime/miner-loops/pearl_miner_loop.py`` as a module and test its pure
parts. End-to-end tests run the loop and ``tests/fixtures/pearl/bin/pearl-gateway`` as
subprocesses on free loopback ports, with the stand-in ``pearl_mining`` on PYTHONPATH.
They never sleep to synchronise: they poll the processes' logs or the gateway's metrics
until a condition holds or a deadline passes, and every subprocess is killed on cleanup.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
import unittest
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
LOOP_PATH = REPO / "runtime" / "miner-loops" / "pearl_miner_loop.py"
GATEWAY_PATH = REPO / "tests" / "fixtures" / "pearl" / "bin" / "pearl-gateway"
FIXTURE_PYTHON = REPO / "tests" / "fixtures" / "pearl" / "python"

# The stand-in pearl_mining for the unit tests, whether or not PYTHONPATH names it.
if str(FIXTURE_PYTHON) not in sys.path:
    sys.path.insert(0, str(FIXTURE_PYTHON))
import pearl_mining  # noqa: E402


def _load_loop_module() -> types.ModuleType:
    # The file lives in a directory with a dash in its name: load it by path.
    spec = importlib.util.spec_from_file_location("pearl_miner_loop", LOOP_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["pearl_miner_loop"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


loop = _load_loop_module()

# How long a condition may take to hold before a test fails. Generous against a slow CI
# machine; a passing run never waits for it.
DEADLINE_S = 10.0
POLL_S = 0.02


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL_S)


def child_env(**extra: str) -> Dict[str, str]:
    """The test environment without inherited knobs, the stand-ins on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_GATEWAY_", "TEST_PEARL_"))}
    env["PYTHONPATH"] = str(FIXTURE_PYTHON)
    env.update(extra)
    return env


class Proc:
    """A subprocess whose stdout and stderr go to a log file the test can poll."""

    def __init__(self, test: unittest.TestCase, name: str, argv: List[str], env: Dict[str, str]) -> None:
        self.name = name
        self.log_path = Path(test.tmp) / f"{name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        test.addCleanup(self.cleanup)

    def text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def count(self, needle: str) -> int:
        return self.text().count(needle)

    def wait_for_log(self, needle: str, times: int = 1, timeout: float = DEADLINE_S) -> None:
        def seen() -> bool:
            if self.count(needle) >= times:
                return True
            if self.proc.poll() is not None and self.count(needle) < times:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before logging "
                                     f"{needle!r} x{times}:\n{self.text()}")
            return False

        try:
            wait_until(seen, f"{self.name} to log {needle!r} x{times}", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.name} log ---\n{self.text()}") from None

    def signal_and_wait(self, signum: int, timeout: float) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=timeout)

    def wait(self, timeout: float = DEADLINE_S) -> int:
        return self.proc.wait(timeout=timeout)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._log.close()


def read_metrics(port: int) -> Optional[Dict[str, float]]:
    """The gateway's metrics as name -> value; None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, ConnectionError, OSError):
        return None
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()
            values[name] = float(value)
    return values


class ProcessTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="pearl-loop-test-")
        self.addCleanup(self._tmp.cleanup)
        self.tmp = self._tmp.name

    def start_gateway(self, port: int, metrics_port: Optional[int] = None, wait: bool = True,
                      **knobs: str) -> Proc:
        env = child_env(
            MINER_RPC_TRANSPORT="tcp",
            MINER_RPC_PORT=str(port),
            METRICS_BIND=f"127.0.0.1:{metrics_port or free_port()}",
            PEARLD_RPC_URL="http://127.0.0.1:44107",
            PEARLD_RPC_USER="rpcuser",
            PEARLD_RPC_PASSWORD="s3cret-password",
            PEARLD_MINING_ADDRESS="prl1ptestaddress",
            **knobs,
        )
        gateway = Proc(self, "gateway", [str(GATEWAY_PATH), "start"], env)
        if wait:
            gateway.wait_for_log(f"Miner RPC server listening on TCP: 127.0.0.1:{port}")
        return gateway

    def start_loop(self, port: int, *extra: str, env: Optional[Dict[str, str]] = None, **knobs: str) -> Proc:
        argv = [sys.executable, "-u", str(LOOP_PATH), "--backend", "cpu",
                "--gateway-host", "127.0.0.1", "--gateway-port", str(port),
                "--connect-retry-seconds", "0.05", *extra]
        return Proc(self, "miner-loop", argv, env if env is not None else child_env(**knobs))

    def wait_metric(self, metrics_port: int, name: str, at_least: float) -> Dict[str, float]:
        def reached() -> Optional[Dict[str, float]]:
            values = read_metrics(metrics_port)
            return values if values and values.get(name, 0) >= at_least else None

        return wait_until(reached, f"{name} >= {at_least}")

    def assert_clean_stop(self, miner: Proc, signum: int = signal.SIGTERM, within: float = 2.0) -> None:
        started = time.monotonic()
        rc = miner.signal_and_wait(signum, timeout=within + 3)
        elapsed = time.monotonic() - started
        self.assertEqual(rc, 0, miner.text())
        self.assertLess(elapsed, within, f"took {elapsed:.2f} s to stop")
        self.assertIn(" INFO stopping", miner.text())


# ======================================================================================
# Pure parts of the loop


class ArgumentTests(unittest.TestCase):
    def parse_error(self, argv: List[str]) -> str:
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), self.assertRaises(SystemExit) as raised:
            loop.parse_args(argv)
        self.assertEqual(raised.exception.code, 2)
        return stderr.getvalue()

    def test_cpu_defaults(self) -> None:
        args = loop.parse_args(["--backend", "cpu"])
        self.assertEqual((args.m, args.n, args.k, args.rank), (256, 128, 1024, 32))
        self.assertEqual((args.gateway_host, args.gateway_port), ("127.0.0.1", 8337))
        self.assertEqual((args.connect_timeout_seconds, args.connect_retry_seconds), (30.0, 0.25))

    def test_backend_defaults_to_cpu(self) -> None:
        args = loop.parse_args([])
        self.assertEqual(args.backend, "cpu")
        self.assertEqual((args.m, args.n, args.k, args.rank), (256, 128, 1024, 32))

    def test_mps_defaults(self) -> None:
        args = loop.parse_args(["--backend", "mps"])
        self.assertEqual((args.m, args.n, args.k, args.rank), (128, 128, 1024, 64))

    def test_given_flags_win_and_the_rest_default_by_backend(self) -> None:
        args = loop.parse_args(["--backend", "mps", "--m", "64", "--rank", "32", "--gateway-host", "::1",
                                "--gateway-port", "9000", "--connect-timeout-seconds", "5",
                                "--connect-retry-seconds", "0.5"])
        self.assertEqual((args.m, args.n, args.k, args.rank), (64, 128, 1024, 32))
        self.assertEqual((args.gateway_host, args.gateway_port), ("::1", 9000))
        self.assertEqual((args.connect_timeout_seconds, args.connect_retry_seconds), (5.0, 0.5))

    def test_rejects_bad_values(self) -> None:
        self.assertIn("invalid choice", self.parse_error(["--backend", "cuda"]))
        self.assertIn("positive integer", self.parse_error(["--m", "0"]))
        self.assertIn("positive integer", self.parse_error(["--k", "x"]))
        self.assertIn("TCP port", self.parse_error(["--gateway-port", "70000"]))
        self.assertIn("positive number", self.parse_error(["--connect-retry-seconds", "0"]))
        self.assertIn("positive number", self.parse_error(["--connect-timeout-seconds", "nan"]))

    def test_mps_refuses_shapes_the_adapter_rejects(self) -> None:
        self.assertIn("hash tile", self.parse_error(["--backend", "mps", "--rank", "8"]))
        self.assertIn("hash tile", self.parse_error(["--backend", "mps", "--m", "8"]))
        # The same shape is fine for the CPU search, which has no hash tiles.
        self.assertEqual(loop.parse_args(["--backend", "cpu", "--rank", "8"]).rank, 8)


class FramingTests(unittest.TestCase):
    def test_request_envelope(self) -> None:
        self.assertEqual(loop.make_request("getMiningInfo", {}, 7),
                         {"jsonrpc": "2.0", "method": "getMiningInfo", "params": {}, "id": 7})

    def test_one_line_per_message(self) -> None:
        line = loop.encode_message(loop.make_request("submitPlainProof", {"note": "a\nb"}, 1))
        self.assertTrue(line.endswith(b"\n"))
        self.assertEqual(line.count(b"\n"), 1)
        self.assertEqual(json.loads(line)["params"]["note"], "a\nb")

    def test_decode_response(self) -> None:
        self.assertEqual(loop.decode_message(b'{"jsonrpc":"2.0","result":"submitted","id":3}\n')["result"],
                         "submitted")
        for bad in (b"not json\n", b"[1, 2]\n", b'{"jsonrpc":"2.0","id":1}\n', b"\xff\n"):
            with self.subTest(bad=bad), self.assertRaises(loop.ProtocolError):
                loop.decode_message(bad)

    def test_rpc_error(self) -> None:
        self.assertIsNone(loop.rpc_error({"result": "submitted", "id": 1}))
        self.assertIsNone(loop.rpc_error({"result": "submitted", "error": None, "id": 1}))
        error = loop.rpc_error({"error": {"code": -32001, "message": "mining_paused"}, "id": 1})
        self.assertEqual(error, (-32001, "mining_paused"))
        self.assertEqual(str(error), "-32001 mining_paused")
        self.assertEqual(str(loop.rpc_error({"error": "boom", "id": 1})), "boom")


class JobTests(unittest.TestCase):
    HEADER = bytes(range(76))

    def job_result(self, **fields: object) -> Dict[str, object]:
        result = {
            "incomplete_header_bytes": base64.b64encode(self.HEADER).decode(),
            "target": 12345,
            "cert_version": 2,
            "ancestor_headers": [base64.b64encode(bytes(108)).decode()],
            "some_future_field": {"nested": [1, 2]},
        }
        result.update(fields)
        return result

    def test_parse_job(self) -> None:
        job = loop.parse_job(self.job_result())
        self.assertEqual((job.header, job.target), (self.HEADER, 12345))
        self.assertEqual(loop.parse_job(self.job_result(target="99")).target, 99)

    def test_parse_job_rejects_unusable_jobs(self) -> None:
        for bad in ([], {"target": 1}, self.job_result(incomplete_header_bytes="***"),
                    self.job_result(target=True), self.job_result(target=1.5), self.job_result(target="x")):
            with self.subTest(bad=bad), self.assertRaises(loop.JobError):
                loop.parse_job(bad)

    def test_submit_params_keep_the_job_as_received(self) -> None:
        received = self.job_result()
        job = loop.parse_job(received)
        params = loop.submit_params("cHJvb2Y=", job)
        self.assertEqual(params, {"plain_proof": "cHJvb2Y=", "mining_job": received})
        # A copy: what goes on the wire cannot be changed through the job, or vice versa.
        params["mining_job"]["some_future_field"]["nested"].append(3)
        self.assertEqual(job.raw["some_future_field"]["nested"], [1, 2])
        received["target"] = 0
        self.assertEqual(job.raw["target"], 12345)

    def test_cpu_backend_mines_with_the_reference_configuration(self) -> None:
        backend = loop.CpuBackend(loop.Shape(256, 128, 1024, 32))
        backend.prepare()
        proof = backend.search(loop.parse_job(self.job_result()))
        self.assertTrue(pearl_mining.verify_plain_proof(self.HEADER, proof))
        config = loop.build_mining_config(pearl_mining, k=1024, rank=32, rows=loop.CPU_ROWS_PATTERN,
                                          cols=loop.CPU_COLS_PATTERN)
        self.assertEqual(config.common_dim, 1024)
        self.assertEqual(config.rank, 32)
        self.assertIs(config.mma_type, pearl_mining.MMAType.Int7xInt7ToInt32)
        self.assertEqual(config.rows_pattern.to_list(), [0, 8, 64, 72])
        self.assertEqual(config.cols_pattern.to_list(), [0, 1, 8, 9, 32, 33, 40, 41])


class FakeTensor:
    def __init__(self, *shape: int) -> None:
        self.shape = shape


class FakeNoisyGemm:
    """Just the attributes of upstream NoisyGemm that the adapter reads."""

    def __init__(self, *, noise_range: int, noise_rank: int, hash_tile_h: int, hash_tile_w: int,
                 matmul_tile_h: int, matmul_tile_w: int) -> None:
        self.noise_rank = noise_rank
        self.inner_hash = types.SimpleNamespace(tile_h=hash_tile_h, tile_w=hash_tile_w)


class MpsAdapterTests(unittest.TestCase):
    def test_shape_check(self) -> None:
        loop.check_noisy_gemm_shapes(128, 128, 16, 16, 64)
        loop.check_noisy_gemm_shapes(16, 16, 16, 16, 16)
        for m, n, rank in ((15, 128, 64), (128, 15, 64), (128, 128, 15)):
            with self.subTest(m=m, n=n, rank=rank), self.assertRaisesRegex(ValueError, "larger than hash tile"):
                loop.check_noisy_gemm_shapes(m, n, 16, 16, rank)
        # The rank is compared with the smaller hash tile side, as upstream does.
        loop.check_noisy_gemm_shapes(128, 128, 32, 16, 16)

    def build(self, rank: int) -> object:
        transcript = type("Transcript", (), {})
        cls = loop.make_mps_noisy_gemm_class(FakeNoisyGemm, types.SimpleNamespace(), transcript)
        self.assertTrue(issubclass(cls, FakeNoisyGemm))
        self.assertIs(cls.Transcript, transcript)
        return cls(noise_range=128, noise_rank=rank, hash_tile_h=16, hash_tile_w=16,
                   matmul_tile_h=rank, matmul_tile_w=rank)

    def test_adapter_raises_value_error_before_touching_the_device(self) -> None:
        # The fake torch has no zeros(): reaching the allocation would be AttributeError.
        with self.assertRaisesRegex(ValueError, r"m=8, n=128.*larger than hash tile"):
            self.build(64)._tiled_matmul(FakeTensor(8, 1024), FakeTensor(1024, 128), b"key", 1)
        with self.assertRaisesRegex(ValueError, r"n=8.*larger than hash tile"):
            self.build(64)._tiled_matmul(FakeTensor(128, 1024), FakeTensor(1024, 8), b"key", 1)
        with self.assertRaisesRegex(ValueError, r"noise_rank=8.*larger than hash tile"):
            self.build(8)._tiled_matmul(FakeTensor(128, 1024), FakeTensor(1024, 128), b"key", 1)
        with self.assertRaisesRegex(ValueError, "inner dimensions differ"):
            self.build(64)._tiled_matmul(FakeTensor(128, 1024), FakeTensor(512, 128), b"key", 1)


class FakeConnection:
    def __init__(self, answers: List[Dict[str, object]]) -> None:
        self.answers = answers
        self.calls: List[str] = []

    async def call(self, method: str, params: Dict[str, object]) -> Dict[str, object]:
        self.calls.append(method)
        return self.answers.pop(0)


class FakeBackend:
    def __init__(self, proof: Optional[str]) -> None:
        self.proof = proof

    def search(self, job: object) -> Optional[str]:
        return self.proof


class RoundTests(unittest.TestCase):
    JOB = {"incomplete_header_bytes": base64.b64encode(bytes(76)).decode(), "target": 1, "cert_version": 2}

    def run_round(self, answers: List[Dict[str, object]], proof: Optional[str]) -> "tuple[FakeConnection, float]":
        async def go() -> "tuple[FakeConnection, float]":
            conn = FakeConnection(answers)
            started = time.monotonic()
            await loop.mine_round(conn, FakeBackend(proof), loop.DaemonWorker())
            return conn, time.monotonic() - started

        return asyncio.run(go())

    def test_unsuccessful_search_starts_the_next_round_at_once(self) -> None:
        conn, elapsed = self.run_round([{"result": self.JOB, "id": 0}], proof=None)
        self.assertEqual(conn.calls, ["getMiningInfo"])
        self.assertLess(elapsed, loop.FAILURE_BACKOFF_SECONDS / 2)

    def test_found_proof_is_submitted_without_waiting(self) -> None:
        with self.assertLogs(loop.LOG, "INFO") as logs:
            conn, elapsed = self.run_round([{"result": self.JOB, "id": 0}, {"result": "submitted", "id": 1}],
                                           proof="cHJvb2Y=")
        self.assertEqual(conn.calls, ["getMiningInfo", "submitPlainProof"])
        self.assertEqual([r.getMessage() for r in logs.records], ["share submitted", "share accepted"])
        self.assertLess(elapsed, loop.FAILURE_BACKOFF_SECONDS / 2)

    def test_paused_gateway_waits_a_second(self) -> None:
        with self.assertLogs(loop.LOG, "INFO") as logs:
            conn, elapsed = self.run_round(
                [{"error": {"code": -32001, "message": "mining_paused"}, "id": 0}], proof="cHJvb2Y=")
        self.assertEqual(conn.calls, ["getMiningInfo"])
        self.assertTrue(logs.records[0].getMessage().startswith("mining paused by pearl-gateway"))
        self.assertGreaterEqual(elapsed, loop.FAILURE_BACKOFF_SECONDS * 0.9)


class ConnectionTests(unittest.TestCase):
    def serve_once(self, reply: Callable[[bytes], bytes]) -> BaseException:
        """Run one GatewayConnection.call against a server that answers with ``reply``."""

        async def go() -> BaseException:
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.write(reply(await reader.readline()))
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            conn = await loop.GatewayConnection.open("127.0.0.1", port, timeout=5, retry=0.05)
            try:
                await conn.call("getMiningInfo", {})
            except Exception as exc:  # noqa: BLE001 - returned for the assertion
                return exc
            finally:
                await conn.close()
                server.close()
            raise AssertionError("call succeeded")

        return asyncio.run(go())

    def test_closed_socket_is_a_connection_error(self) -> None:
        self.assertIsInstance(self.serve_once(lambda line: b""), ConnectionError)
        self.assertIsInstance(self.serve_once(lambda line: b'{"result": 1'), ConnectionError)

    def test_answer_to_another_request_is_a_protocol_error(self) -> None:
        exc = self.serve_once(lambda line: b'{"jsonrpc":"2.0","result":{},"id":41}\n')
        self.assertIsInstance(exc, loop.ProtocolError)

    def test_connect_gives_up_at_the_deadline(self) -> None:
        port = free_port()  # nothing listens there
        started = time.monotonic()
        with self.assertRaisesRegex(loop.FatalError, f"timed out connecting to pearl-gateway at 127.0.0.1:{port}"):
            asyncio.run(loop.GatewayConnection.open("127.0.0.1", port, timeout=0.3, retry=0.05))
        self.assertLess(time.monotonic() - started, 2.0)


# ======================================================================================
# The test gateway on its own


class GatewayTests(ProcessTestCase):
    def run_gateway(self, *argv: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(GATEWAY_PATH), *argv], env=child_env(**env), capture_output=True,
                              text=True, timeout=DEADLINE_S)

    def test_version_and_unknown_command(self) -> None:
        version = self.run_gateway("version")
        self.assertEqual(version.returncode, 0)
        self.assertIn("pearl-gateway", version.stdout)
        unknown = self.run_gateway("frobnicate")
        self.assertEqual(unknown.returncode, 2)
        self.assertIn("unknown command", unknown.stderr)

    def test_configuration_errors_exit_2(self) -> None:
        base = {"MINER_RPC_TRANSPORT": "tcp", "MINER_RPC_PORT": str(free_port()),
                "TEST_GATEWAY_NO_METRICS": "1", "PEARLD_MINING_ADDRESS": "prl1p"}
        for change, message in (({"MINER_RPC_TRANSPORT": "uds"}, "MINER_RPC_TRANSPORT"),
                                ({"PEARLD_MINING_ADDRESS": ""}, "PEARLD_MINING_ADDRESS"),
                                ({"PEARLD_MINING_ADDRESS": "   "}, "PEARLD_MINING_ADDRESS")):
            with self.subTest(change=change):
                result = self.run_gateway("start", **{**base, **change})
                self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
                self.assertIn(message, result.stderr)
        env = {k: v for k, v in child_env(**base).items() if k != "PEARLD_MINING_ADDRESS"}
        missing = subprocess.run([str(GATEWAY_PATH), "start"], env=env, capture_output=True, text=True,
                                 timeout=DEADLINE_S)
        self.assertEqual(missing.returncode, 2)

    def test_wrong_password_exits_3_without_printing_it(self) -> None:
        result = self.run_gateway("start", MINER_RPC_TRANSPORT="tcp", MINER_RPC_PORT=str(free_port()),
                                  PEARLD_MINING_ADDRESS="prl1p", PEARLD_RPC_PASSWORD="wrong-Secret-123",
                                  TEST_GATEWAY_EXPECTED_PW="right-Secret-456", TEST_GATEWAY_NO_METRICS="1")
        self.assertEqual(result.returncode, 3)
        output = result.stdout + result.stderr
        self.assertIn("pearld authentication failed", output)
        self.assertNotIn("wrong-Secret-123", output)
        self.assertNotIn("right-Secret-456", output)

    def test_right_password_starts_and_sigterm_exits_0(self) -> None:
        port, metrics_port = free_port(), free_port()
        gateway = self.start_gateway(port, metrics_port, TEST_GATEWAY_EXPECTED_PW="s3cret-password")
        values = self.wait_metric(metrics_port, "process_start_time_seconds", 1)
        for name in ("pearl_gateway_shares_submitted_total", "pearl_gateway_shares_accepted_total",
                     "pearl_gateway_blocks_found_total", "pearl_gateway_last_share_timestamp",
                     "pearl_gateway_errors_total"):
            self.assertEqual(values[name], 0, name)
        self.assertEqual(gateway.signal_and_wait(signal.SIGTERM, timeout=5), 0)
        self.assertIn("gateway stopping", gateway.text())
        self.assertNotIn("s3cret-password", gateway.text())

    def test_no_metrics_knob(self) -> None:
        port, metrics_port = free_port(), free_port()
        self.start_gateway(port, metrics_port, TEST_GATEWAY_NO_METRICS="1")
        self.assertIsNone(read_metrics(metrics_port))

    def rpc(self, sock_file: "socket.SocketIO", message: object) -> Dict[str, object]:
        raw = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        sock_file.write(raw)
        sock_file.flush()
        return json.loads(sock_file.readline())

    def test_protocol(self) -> None:
        port, metrics_port = free_port(), free_port()
        self.start_gateway(port, metrics_port, TEST_GATEWAY_PAUSE_FIRST="1")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, sock.makefile("rwb") as f:
            paused = self.rpc(f, loop.make_request("getMiningInfo", {}, 1))
            self.assertEqual(paused["error"]["code"], -32001)
            self.assertEqual(paused["error"]["message"], "mining_paused")

            job = self.rpc(f, loop.make_request("getMiningInfo", {}, 2))["result"]
            self.assertEqual(len(base64.b64decode(job["incomplete_header_bytes"])), 76)
            self.assertIsInstance(job["target"], int)
            self.assertIn("cert_version", job)
            self.assertIn("ancestor_headers", job)
            header = base64.b64decode(job["incomplete_header_bytes"])
            good = base64.b64encode(pearl_mining.expected_proof_bytes(header)).decode()

            self.assertEqual(self.rpc(f, b"{nonsense\n")["error"]["code"], -32700)
            self.assertEqual(self.rpc(f, {"jsonrpc": "1.0", "method": "x", "id": 3})["error"]["code"], -32600)
            self.assertEqual(self.rpc(f, loop.make_request("nope", {}, 4))["error"]["code"], -32601)
            stripped = {k: v for k, v in job.items() if k != "cert_version"}
            self.assertEqual(self.rpc(f, loop.make_request(
                "submitPlainProof", {"plain_proof": good, "mining_job": stripped}, 5))["error"]["code"], -32602)
            wrong = base64.b64encode(b"proof:" + bytes(32)).decode()
            rejected = self.rpc(f, loop.make_request(
                "submitPlainProof", {"plain_proof": wrong, "mining_job": job}, 6))["error"]
            self.assertEqual(rejected["code"], -32000)
            self.assertTrue(rejected["message"].startswith("Rejecting proof:"))
            altered = {k: v for k, v in job.items() if k != "ancestor_headers"}
            self.assertEqual(self.rpc(f, loop.make_request(
                "submitPlainProof", {"plain_proof": good, "mining_job": altered}, 7))["error"]["code"], -32602)
            accepted = self.rpc(f, loop.make_request(
                "submitPlainProof", {"plain_proof": good, "mining_job": job}, 8))
            self.assertEqual(accepted, {"jsonrpc": "2.0", "result": "submitted", "id": 8})

        values = self.wait_metric(metrics_port, "pearl_gateway_shares_accepted_total", 1)
        self.assertEqual(values["pearl_gateway_shares_accepted_total"], 1)
        self.assertEqual(values["pearl_gateway_shares_submitted_total"], 3)  # wrong, altered, good
        self.assertEqual(values["pearl_gateway_errors_total"], 6)  # paused is not an error
        self.assertGreater(values["pearl_gateway_last_share_timestamp"], 0)


# ======================================================================================
# The loop against the test gateway


class MinerLoopTests(ProcessTestCase):
    def test_mines_submits_and_counts(self) -> None:
        port, metrics_port = free_port(), free_port()
        gateway = self.start_gateway(port, metrics_port, TEST_GATEWAY_BLOCK_EVERY="2")
        miner = self.start_loop(port)
        values = self.wait_metric(metrics_port, "pearl_gateway_shares_accepted_total", 4)
        self.assertGreaterEqual(values["pearl_gateway_blocks_found_total"], 2)
        self.assertEqual(values["pearl_gateway_errors_total"], 0)
        self.assertGreater(values["pearl_gateway_last_share_timestamp"], 0)
        miner.wait_for_log("share accepted", times=4)
        log = miner.text()
        self.assertIn(f" INFO connected to pearl-gateway at 127.0.0.1:{port}\n", log)
        self.assertIn(" INFO share submitted\n", log)
        self.assertIn(" INFO share accepted\n", log)
        self.assertIn("Block accepted by node!", gateway.text())
        self.assertIn("Received PlainProof", gateway.text())
        self.assert_clean_stop(miner)
        self.assertEqual(gateway.signal_and_wait(signal.SIGTERM, timeout=5), 0)

    def test_rejected_shares_are_logged_and_mining_goes_on(self) -> None:
        port, metrics_port = free_port(), free_port()
        gateway = self.start_gateway(port, metrics_port, TEST_GATEWAY_REJECT_EVERY="2")
        miner = self.start_loop(port)
        miner.wait_for_log("share rejected: -32000 Rejecting proof: test")
        self.wait_metric(metrics_port, "pearl_gateway_shares_accepted_total", 2)
        self.assertIn("Rejecting proof: test", gateway.text())
        self.assertGreaterEqual(read_metrics(metrics_port)["pearl_gateway_errors_total"], 1)
        self.assert_clean_stop(miner)

    def test_waits_out_a_paused_gateway(self) -> None:
        port, metrics_port = free_port(), free_port()
        self.start_gateway(port, metrics_port, TEST_GATEWAY_PAUSE_FIRST="1")
        miner = self.start_loop(port)
        miner.wait_for_log("mining paused by pearl-gateway: -32001 mining_paused")
        self.wait_metric(metrics_port, "pearl_gateway_shares_accepted_total", 1)

    def test_waits_for_a_gateway_that_starts_late(self) -> None:
        port, metrics_port = free_port(), free_port()
        miner = self.start_loop(port)
        miner.wait_for_log("connecting to pearl-gateway")
        self.start_gateway(port, metrics_port, wait=False, TEST_GATEWAY_START_DELAY_MS="300")
        self.wait_metric(metrics_port, "pearl_gateway_shares_accepted_total", 1)
        miner.wait_for_log("connected to pearl-gateway at")
        self.assertEqual(miner.count("connected to pearl-gateway at"), 1)

    def test_reconnects_when_the_gateway_restarts(self) -> None:
        port = free_port()
        first_metrics, second_metrics = free_port(), free_port()
        first = self.start_gateway(port, first_metrics)
        miner = self.start_loop(port)
        self.wait_metric(first_metrics, "pearl_gateway_shares_accepted_total", 1)
        first.proc.kill()
        first.wait()
        miner.wait_for_log("gateway connection lost, reconnecting")

        self.start_gateway(port, second_metrics)
        self.wait_metric(second_metrics, "pearl_gateway_shares_accepted_total", 2)
        miner.wait_for_log("connected to pearl-gateway at", times=2)
        self.assertIsNone(miner.proc.poll())
        # Logged once per lost connection, not once per failed attempt to reconnect.
        self.assertEqual(miner.count("gateway connection lost, reconnecting"), 1, miner.text())
        self.assert_clean_stop(miner)

    def test_keeps_going_when_the_gateway_closes_connections(self) -> None:
        port, metrics_port = free_port(), free_port()
        self.start_gateway(port, metrics_port, TEST_GATEWAY_CLOSE_AFTER="3")
        miner = self.start_loop(port)
        self.wait_metric(metrics_port, "pearl_gateway_shares_accepted_total", 4)
        miner.wait_for_log("connected to pearl-gateway at", times=3)
        self.assertGreaterEqual(miner.count("gateway connection lost, reconnecting"), 2)
        self.assertIsNone(miner.proc.poll())
        self.assert_clean_stop(miner)

    def test_sigterm_while_mining_exits_0_promptly(self) -> None:
        port, metrics_port = free_port(), free_port()
        self.start_gateway(port, metrics_port)
        miner = self.start_loop(port, TEST_PEARL_MINING_DELAY_MS="500")
        self.wait_metric(metrics_port, "pearl_gateway_shares_accepted_total", 1)
        # The second search is under way: the signal lands while mine() sleeps.
        miner.wait_for_log("mine() started", times=2)
        self.assert_clean_stop(miner)

    def test_a_long_mine_call_does_not_block_the_event_loop(self) -> None:
        # A 20 s search and a stop within 2 s: only a loop whose event loop is free while
        # mine() runs (and that does not wait for the worker on exit) can do it.
        port, metrics_port = free_port(), free_port()
        self.start_gateway(port, metrics_port)
        miner = self.start_loop(port, TEST_PEARL_MINING_DELAY_MS="20000")
        miner.wait_for_log("mine() started")
        self.assert_clean_stop(miner)

    def test_sigint_exits_0(self) -> None:
        port, metrics_port = free_port(), free_port()
        self.start_gateway(port, metrics_port)
        miner = self.start_loop(port, TEST_PEARL_MINING_DELAY_MS="20000")
        miner.wait_for_log("mine() started")
        self.assert_clean_stop(miner, signal.SIGINT)

    def test_sigterm_before_connecting_exits_0(self) -> None:
        miner = self.start_loop(free_port())  # nothing listens: the loop keeps retrying
        miner.wait_for_log("connecting to pearl-gateway")
        self.assert_clean_stop(miner)

    def test_gives_up_when_the_gateway_never_comes(self) -> None:
        port = free_port()
        miner = self.start_loop(port, "--connect-timeout-seconds", "0.3")
        self.assertEqual(miner.wait(), 1)
        self.assertIn(f"timed out connecting to pearl-gateway at 127.0.0.1:{port}", miner.text())

    def test_missing_pearl_mining_exits_1(self) -> None:
        empty = Path(self.tmp) / "empty"
        empty.mkdir()
        env = child_env(PYTHONPATH=str(empty))
        probe = subprocess.run([sys.executable, "-c", "import pearl_mining"], env=env, capture_output=True)
        if probe.returncode == 0:
            self.skipTest("a real pearl_mining is installed")
        miner = self.start_loop(free_port(), env=env)
        self.assertEqual(miner.wait(), 1)
        self.assertIn("pearl_mining is not importable", miner.text())

    def test_mps_backend_without_torch_exits_1(self) -> None:
        if importlib.util.find_spec("torch") is not None:
            self.skipTest("torch is installed")
        argv = [sys.executable, "-u", str(LOOP_PATH), "--backend", "mps", "--gateway-port", str(free_port())]
        miner = Proc(self, "mps-loop", argv, child_env())
        self.assertEqual(miner.wait(), 1)
        self.assertIn("torch is not importable", miner.text())


if __name__ == "__main__":
    unittest.main()
