//! `jarvis mine status`'s GPU section end to end: the real binary, a session
//! of the fake miner (tests/fake-miner, no GPU request: `gpu_request =
//! "none"`, whose GPUs are the ones a request would name) on the machine's
//! Docker engine, and the fake `libnvidia-ml.so.1` (tests/fake-nvml) loaded
//! through `JARVIS_NVML_LIBRARY`, its GPUs and readings set per command with
//! `FAKE_NVML_GPUS` and `FAKE_NVML_TELEMETRY`. `start` and `status` are
//! separate processes, so each reads the energy counter the environment it
//! was given says: the counter "advances" between the baseline `start`
//! records and the `status` that reads it.
//!
//! The fake miner runs under a fixed container name, so every test that runs
//! it holds [`one_miner_at_a_time`] (this process, and the machine-wide
//! [`miner_lock`] the other suites take).

#![cfg(target_os = "linux")]

use jarvis_mine_tests::run::{Run, jarvis_mine, output_within, wait_for};
use jarvis_mine_tests::{
    HomeContainers, MinerLock, fake_miner_init, fake_nvml_library, free_port, kill,
    labelled_processes, miner_lock,
};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

const JARVIS: &str = env!("CARGO_BIN_EXE_jarvis-under-test");
const WALLET: &str = "prl1qexampleaddress";
const PASSWORD: &str = "status-telemetry-password";
/// Far above a normal run, far below a hang.
const DEADLINE: Duration = Duration::from_secs(120);
const H100: &str = "NVIDIA H100 80GB HBM3";
const BASELINE: &str = "runtime/mining-energy-baseline.json";

// ---------------------------------------------------------------------------
// The fake NVML.

/// `count` H100s with UUIDs `GPU-h100-<index>`, for `FAKE_NVML_GPUS`.
fn h100s(count: u32) -> String {
    (0..count)
        .map(|index| format!("{H100},9.0,81559,GPU-h100-{index}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// The environment of a command that loads the fake NVML with `gpus` GPUs
/// and these `FAKE_NVML_TELEMETRY` entries.
fn fake_nvml(gpus: u32, telemetry: &str) -> Vec<(String, String)> {
    vec![
        ("JARVIS_NVML_LIBRARY".into(), fake_nvml_library().into()),
        ("FAKE_NVML_GPUS".into(), h100s(gpus)),
        ("FAKE_NVML_TELEMETRY".into(), telemetry.into()),
    ]
}

/// Distinct readings for GPU `index` (`energy_mj` set apart)...
fn readings(index: u32) -> String {
    let i = u64::from(index);
    format!(
        "power_mw={} gpu_temp_c={} memory_temp_c={} fan_percent={} \
         gpu_util_percent={} memory_util_percent={} memory_used_mib={} \
         sm_clock_mhz={} memory_clock_mhz={} clocks_event_reasons={:#x} \
         ecc_corrected={} ecc_uncorrected={} pstate={}",
        412_345 + i * 1000,
        61 + i,
        70 + i,
        40 + i,
        97 - i,
        55 + i,
        70_000 + i * 100,
        1980 - i * 10,
        2619 - i,
        THROTTLE_BITS[index as usize % 8],
        3 + i,
        i,
        i % 16,
    )
}

const THROTTLE_BITS: [u64; 8] = [0x0, 0x4, 0x20 | 0x40, 0x1, 0x8, 0x80, 0x10, 0x100];
const THROTTLE_NAMES: [&[&str]; 8] = [
    &[],
    &["sw_power_cap"],
    &["sw_thermal_slowdown", "hw_thermal_slowdown"],
    &["gpu_idle"],
    &["hw_slowdown"],
    &["hw_power_brake_slowdown"],
    &["sync_boost"],
    &["display_clock_setting"],
];

/// ...as `status --json` carries them...
fn expected_json(index: u32, energy_mj: u64) -> Value {
    let i = u64::from(index);
    json!({
        "index": index,
        "uuid": format!("GPU-h100-{index}"),
        "name": H100,
        "power_w": (412_345 + i * 1000) as f64 / 1000.0,
        "energy_mj": energy_mj,
        "gpu_temp_c": 61 + i,
        "memory_temp_c": 70 + i,
        "fan_percent": 40 + i,
        "gpu_util_percent": 97 - i,
        "memory_util_percent": 55 + i,
        "memory_used_mib": 70_000 + i * 100,
        "memory_total_mib": 81559,
        "sm_clock_mhz": 1980 - i * 10,
        "memory_clock_mhz": 2619 - i,
        "throttle_reasons": THROTTLE_NAMES[index as usize % 8],
        "ecc_volatile_corrected": 3 + i,
        "ecc_volatile_uncorrected": i,
        "performance_state": format!("P{}", i % 16),
    })
}

/// ...and as its table's row (every value of these readings has the
/// same width from GPU to GPU, so the columns are fixed).
fn expected_row(index: u32) -> String {
    let i = u64::from(index);
    let throttle = match THROTTLE_NAMES[index as usize % 8] {
        [] => "none".to_owned(),
        names => names.join(","),
    };
    format!(
        "  {index}    {:.1} W  {} °C  {} °C     {} %  {} %      {}/81559 MiB  {} MHz  {} MHz   P{}      {throttle}",
        (412_345 + i * 1000) as f64 / 1000.0,
        61 + i,
        70 + i,
        97 - i,
        55 + i,
        70_000 + i * 100,
        1980 - i * 10,
        2619 - i,
        i % 16,
    )
}

/// The section's first row for `count` H100s of a session without a GPU
/// request, whose configured GPUs are `requested`.
fn gpus_row(count: u32, requested: &str) -> String {
    format!(
        "GPU telemetry:      {count} × {H100}, the GPUs a request would name ({requested}): \
         the container has none (gpu_request = \"none\")"
    )
}

const HEADER: &str = "  GPU  POWER    TEMP   MEM TEMP  UTIL  MEM UTIL  MEMORY           SM CLOCK  MEM CLOCK  PSTATE  THROTTLE";

/// `FAKE_NVML_TELEMETRY` for `count` GPUs: [`readings`], and GPU i's
/// energy counter at `energy(i)`.
fn telemetry(count: u32, energy: impl Fn(u32) -> String) -> String {
    (0..count)
        .map(|index| format!("{} energy_mj={}", readings(index), energy(index)))
        .collect::<Vec<_>>()
        .join(";")
}

// ---------------------------------------------------------------------------
// Homes, sessions and runs of the binary.

/// One fixed-name miner at a time: in this process, and on this machine.
fn one_miner_at_a_time() -> (MutexGuard<'static, ()>, MinerLock) {
    static MINER: Mutex<()> = Mutex::new(());
    let guard = MINER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (guard, miner_lock())
}

/// The compiled-component cache, made once per run and copied into each
/// home, so that each command does not compile the built-in providers.
fn warm_cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_telemetry-warm-home");
        std::fs::create_dir_all(&home).unwrap();
        let run = Run::new(
            "jarvis mine status",
            jarvis_mine(JARVIS, &home, &["status"])
                .env("DOCKER_HOST", "unix:///nonexistent/status_telemetry.sock")
                .output()
                .unwrap(),
        );
        run.code(0);
        home.join("cache")
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(warm_cache(), &dir.path().join("cache"));
        Home { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `jarvis mine ARGS` in this home, with the pearld password and `env`.
    fn run(&self, args: &[&str], env: &[(String, String)]) -> Run {
        let mut command = jarvis_mine(JARVIS, self.path(), args);
        if let Some(host) = std::env::var_os("DOCKER_HOST") {
            command.env("DOCKER_HOST", host);
        }
        command.env("PEARLD_RPC_PASSWORD", PASSWORD);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let run = Run::new(
            format!("jarvis mine {}", args.join(" ")),
            output_within(&mut command, DEADLINE),
        );
        assert!(
            !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
            "the password was printed: {run}"
        );
        run
    }

    /// Sets `lines` (`key = value`) in `[mining.extra]` of the config
    /// `init` wrote, replacing the keys' lines there.
    fn add_extra(&self, lines: &str) {
        let path = self.path().join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[mining.extra]\n"), "{text}");
        let keys: Vec<&str> = lines
            .lines()
            .filter_map(|line| line.split_once('=').map(|(key, _)| key.trim()))
            .collect();
        let kept: String = text
            .lines()
            .filter(|line| {
                !keys
                    .iter()
                    .any(|key| line.split_once('=').is_some_and(|(k, _)| k.trim() == *key))
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let text = kept.replacen("[mining.extra]\n", &format!("[mining.extra]\n{lines}\n"), 1);
        std::fs::write(&path, text).unwrap();
    }

    fn baseline(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.path().join(BASELINE)).ok()?;
        Some(serde_json::from_str(&text).unwrap())
    }
}

/// A started session of the fake miner (without a GPU request), stopped
/// and its containers removed when dropped.
struct Session {
    home: Home,
    _containers: HomeContainers,
    _one: (MutexGuard<'static, ()>, MinerLock),
}

impl Session {
    /// `init` (plus `extra` in `[mining.extra]` and `flags`), then `start`
    /// with `start_env` (the fake NVML the baseline is read from).
    fn start(extra: &str, flags: &[&str], start_env: &[(String, String)]) -> Session {
        let one = one_miner_at_a_time();
        let home = Home::new();
        let containers = HomeContainers::new(&home.path().canonicalize().unwrap());
        let mut init = fake_miner_init(WALLET, free_port());
        init.extend(flags.iter().map(|flag| flag.to_string()));
        home.run(&init.iter().map(String::as_str).collect::<Vec<_>>(), &[])
            .code(0);
        if !extra.is_empty() {
            home.add_extra(extra);
        }
        home.run(&["start"], start_env).code(0);
        Session {
            home,
            _containers: containers,
            _one: one,
        }
    }

    fn status(&self, env: &[(String, String)]) -> Run {
        self.home.run(&["status"], env)
    }

    fn status_json(&self, env: &[(String, String)]) -> Value {
        self.home.run(&["status", "--json"], env).code(0).json()
    }

    /// `status --json` once every worker's fake miner (one per GPU) has
    /// logged all three of its blocks (two accepted, one rejected): the
    /// counts no longer move.
    #[track_caller]
    fn settled_status(&self, env: &[(String, String)]) -> Value {
        let mut last = Value::Null;
        wait_for(Duration::from_secs(30), || {
            last = self.status_json(env);
            let stats = &last["stats"];
            let settled = match stats["workers"].as_array() {
                Some(workers) if !workers.is_empty() => {
                    workers.iter().all(|w| w["shares_submitted"] == 3)
                }
                _ => stats["shares_submitted"] == 3,
            };
            settled.then(|| last.clone())
        })
        .unwrap_or_else(|| panic!("the fake miners never submitted 3 blocks each: {last:#}"))
    }

    /// The session id the host labelled the container with.
    fn session_id(&self) -> String {
        let status = self.status_json(&[]);
        status["container"]["labels"]["org.openjarvis.mining.session"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.home.run(&["stop"], &[]);
    }
}

/// The stdout lines of `run` from the one starting with `first`, `count` of them.
#[track_caller]
fn lines_from<'a>(run: &'a Run, first: &str, count: usize) -> Vec<&'a str> {
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.starts_with(first))
        .unwrap_or_else(|| panic!("no line starting {first:?}: {run}"));
    lines[at..(at + count).min(lines.len())].to_vec()
}

// ---------------------------------------------------------------------------
// Readings.

#[test]
fn one_gpu_is_shown_exactly_as_text_and_json() {
    let session = Session::start("", &[], &fake_nvml(1, &telemetry(1, |_| "5000".into())));
    let env = fake_nvml(1, &telemetry(1, |_| "5000".into()));

    let json = session.status_json(&env);
    assert_eq!(json["state"], "running", "{json:#}");
    let gpus = &json["gpu_telemetry"];
    assert_eq!(gpus["source"], "config", "{gpus:#}");
    assert_eq!(gpus["requested"], Value::Null);
    assert_eq!(gpus["note"], Value::Null);
    assert!(gpus["sampled_at"].as_f64().unwrap() > 1.7e9);
    assert_eq!(gpus["gpus"], json!([expected_json(0, 5000)]));

    let text = session.status(&env);
    text.code(0);
    assert_eq!(
        lines_from(&text, "GPU telemetry:", 3),
        [
            gpus_row(1, "all").as_str(),
            HEADER,
            "  0    412.3 W  61 °C  70 °C     97 %  55 %      70000/81559 MiB  1980 MHz  2619 MHz   P0      none",
        ]
    );
    // No uncorrected ECC error on GPU 0: no line for it.
    assert!(!text.stdout.contains("uncorrected ECC"), "{text}");
}

#[test]
fn eight_gpus_are_shown_exactly_as_text_and_json() {
    let env = fake_nvml(8, &telemetry(8, |i| (1_000 + i).to_string()));
    let session = Session::start("", &[], &env);

    let json = session.status_json(&env);
    let expected: Vec<Value> = (0..8)
        .map(|i| expected_json(i, 1_000 + u64::from(i)))
        .collect();
    assert_eq!(json["gpu_telemetry"]["gpus"], Value::Array(expected));

    let text = session.status(&env);
    text.code(0);
    let mut wanted = vec![gpus_row(8, "all"), HEADER.to_owned()];
    wanted.extend((0..8).map(expected_row));
    wanted.push("  GPU 1: 1 uncorrected ECC error since the driver loaded".into());
    wanted.extend(
        (2..8).map(|i| format!("  GPU {i}: {i} uncorrected ECC errors since the driver loaded")),
    );
    assert_eq!(lines_from(&text, "GPU telemetry:", wanted.len()), wanted);
}

#[test]
fn not_supported_readings_are_absent_and_energy_is_unknown_not_guessed() {
    let unsupported = "power_mw=300000 energy_mj=? memory_temp_c=? fan_percent=? pstate=? \
                       clocks_event_reasons=? ecc_corrected=? ecc_uncorrected=? \
                       gpu_util_percent=? sm_clock_mhz=1500";
    let env = fake_nvml(1, unsupported);
    let session = Session::start("", &[], &env);

    let json = session.settled_status(&env);
    assert_eq!(
        json["gpu_telemetry"]["gpus"],
        json!([{
            "index": 0,
            "uuid": "GPU-h100-0",
            "name": H100,
            "power_w": 300.0,
            "gpu_temp_c": 33,
            "memory_used_mib": 0,
            "memory_total_mib": 81559,
            "sm_clock_mhz": 1500,
            "memory_clock_mhz": 1593,
        }])
    );
    // The power is known, the energy counter is not: no estimate from power.
    let energy = &json["energy"];
    assert_eq!(energy["energy_j"], Value::Null, "{energy:#}");
    assert_eq!(energy["energy_kwh"], Value::Null);
    assert_eq!(energy["joules_per_share"], Value::Null);
    assert_eq!(energy["shares_per_kwh"], Value::Null);
    assert!(
        energy["unknown"]
            .as_str()
            .unwrap()
            .starts_with("GPU 0 gave no energy counter reading at the start or now"),
        "{energy:#}"
    );
    assert_eq!(
        energy["gpus"],
        json!([{"index": 0, "uuid": "GPU-h100-0", "energy_j": null, "counter_reset": false}])
    );

    let text = session.status(&env);
    assert_eq!(
        lines_from(&text, "GPU telemetry:", 4),
        [
            gpus_row(1, "all").as_str(),
            "  GPU  POWER    TEMP   UTIL  MEM UTIL  MEMORY       SM CLOCK  MEM CLOCK  THROTTLE",
            "  0    300.0 W  33 °C  -     -         0/81559 MiB  1500 MHz  1593 MHz   -",
            "energy (estimate):  unknown (GPU 0 gave no energy counter reading at the start or now \
             (not supported on the GPU, or not read); the energy is not estimated from the power draw)",
        ]
    );
}

#[test]
fn the_gpus_are_those_a_request_would_name_narrowed_by_cuda_visible_devices() {
    let env = fake_nvml(4, "");
    let session = Session::start("cuda_visible_devices = \"1,GPU-h100-3\"", &[], &env);
    let json = session.status_json(&env);
    let gpus = &json["gpu_telemetry"];
    assert_eq!(gpus["requested"], json!(["1", "GPU-h100-3"]), "{gpus:#}");
    let indexes: Vec<&Value> = gpus["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["index"])
        .collect();
    assert_eq!(indexes, [&json!(1), &json!(3)]);
    assert_eq!(json["energy"]["gpus"].as_array().unwrap().len(), 2);
    let text = session.status(&env);
    assert_eq!(
        text.row("GPU telemetry"),
        gpus_row(2, "1, GPU-h100-3")
            .strip_prefix("GPU telemetry:")
            .map(str::trim),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// No NVML.

#[test]
fn no_nvml_is_one_line_and_exit_0() {
    let missing = vec![(
        "JARVIS_NVML_LIBRARY".to_owned(),
        "/nonexistent/libnvidia-ml.so.1".to_owned(),
    )];
    let session = Session::start("", &[], &missing);
    let text = session.status(&missing);
    text.code(0);
    let line = text
        .stdout
        .lines()
        .find(|line| line.starts_with("GPU telemetry"))
        .unwrap_or_else(|| panic!("no GPU telemetry line: {text}"));
    assert!(
        line.starts_with(
            "GPU telemetry: none (NVIDIA driver library /nonexistent/libnvidia-ml.so.1 could not be loaded ("
        ) && line.ends_with("))"),
        "{line}"
    );
    assert!(!text.stdout.contains("energy (estimate)"), "{text}");
    assert!(!text.stderr.contains("rror"), "{text}");

    let json = session.status_json(&missing);
    assert_eq!(json["gpu_telemetry"]["gpus"], json!([]));
    assert!(
        json["gpu_telemetry"]["note"]
            .as_str()
            .unwrap()
            .starts_with("no telemetry (NVIDIA driver library /nonexistent/libnvidia-ml.so.1"),
        "{json:#}"
    );
    assert_eq!(json["energy"]["energy_kwh"], Value::Null);

    // A driver that is not loaded.
    let mut failing = fake_nvml(1, "");
    failing.push(("FAKE_NVML_INIT_FAIL".into(), "1".into()));
    let text = session.status(&failing);
    text.code(0).stdout_has(
        "\nGPU telemetry: none (NVML failed to initialise: NVIDIA driver is not loaded)\n",
    );

    // The start had no NVML (this machine's, or none): status with one says
    // the energy of this session cannot be known.
    let env = fake_nvml(1, "");
    let json = session.status_json(&env);
    assert_eq!(json["gpu_telemetry"]["gpus"].as_array().unwrap().len(), 1);
    let unknown = json["energy"]["unknown"].as_str().unwrap();
    assert!(
        unknown.starts_with("no GPU was read when the session started: "),
        "{unknown}"
    );
    assert_eq!(json["energy"]["energy_kwh"], Value::Null);
}

// ---------------------------------------------------------------------------
// Energy.

#[test]
fn energy_per_share_per_block_and_cost_over_the_window_since_start() {
    let at_start = fake_nvml(2, &telemetry(2, |i| ["1000", "50"][i as usize].into()));
    let session = Session::start("electricity_price_per_kwh = 0.25", &[], &at_start);
    let id = session.session_id();

    // The host's baseline: this session's, the counters as start read them.
    let baseline = session.home.baseline().expect("start records a baseline");
    assert_eq!(baseline["session_id"], id.as_str());
    assert_eq!(
        baseline["gpus"],
        json!([
            {"index": 0, "uuid": "GPU-h100-0", "energy_mj": 1000},
            {"index": 1, "uuid": "GPU-h100-1", "energy_mj": 50},
        ])
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(session.home.path().join(BASELINE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Not in the record OpenJarvis reads (and the provider writes).
    let sidecar = std::fs::read_to_string(session.home.path().join("runtime/mining.json")).unwrap();
    assert!(!sidecar.contains("energy"), "{sidecar}");

    // Each GPU used 1 kWh (3.6e9 mJ) since: 2 kWh, 7.2 MJ.
    let now = fake_nvml(
        2,
        &telemetry(2, |i| ["3600001000", "3600000050"][i as usize].into()),
    );
    let json = session.settled_status(&now);
    let energy = &json["energy"];
    let stats = &json["stats"];
    // Each fake miner (one per GPU, or one for the session) logs three
    // blocks: two accepted, one rejected.
    let miners = stats["workers"].as_array().map_or(1, |w| w.len().max(1)) as u64;
    assert_eq!(stats["shares_accepted"], 2 * miners, "{json:#}");
    assert_eq!(stats["blocks_found"], 2 * miners);
    assert_eq!(energy["shares_accepted"], 2 * miners);
    assert_eq!(energy["blocks_found"], 2 * miners);
    assert_eq!(energy["energy_j"], 7_200_000.0, "{energy:#}");
    assert_eq!(energy["energy_kwh"], 2.0);
    let per = 7_200_000.0 / (2 * miners) as f64;
    assert_eq!(energy["joules_per_share"], per);
    assert_eq!(energy["joules_per_block"], per);
    assert_eq!(energy["shares_per_kwh"], miners as f64);
    assert_eq!(energy["electricity_price_per_kwh"], 0.25);
    assert_eq!(energy["cost"], 0.5);
    assert_eq!(energy["counter_reset"], false);
    assert_eq!(energy["unknown"], Value::Null);
    assert_eq!(
        energy["gpus"],
        json!([
            {"index": 0, "uuid": "GPU-h100-0", "energy_j": 3_600_000.0, "counter_reset": false},
            {"index": 1, "uuid": "GPU-h100-1", "energy_j": 3_600_000.0, "counter_reset": false},
        ])
    );
    // One worker per GPU (vllm-pearl's `auto`), each over its own GPU and
    // its own two accepted blocks.
    assert_eq!(miners, 2, "{json:#}");
    for index in 0..2 {
        let worker = &energy["workers"][index];
        assert_eq!(worker["index"], index, "{energy:#}");
        assert_eq!(worker["gpus"], json!([index.to_string()]));
        assert_eq!(worker["energy_kwh"], 1.0);
        assert_eq!(worker["shares_accepted"], 2);
        assert_eq!(worker["joules_per_share"], 1_800_000.0);
        assert_eq!(worker["joules_per_block"], 1_800_000.0);
        assert_eq!(worker["shares_per_kwh"], 2.0);
        assert_eq!(worker["cost"], 0.25);
    }
    // The window: from the baseline to this sample.
    let since = energy["since"].as_f64().unwrap();
    assert_eq!(since, baseline["taken_at"].as_f64().unwrap());
    let window = energy["window_seconds"].as_f64().unwrap();
    let sampled = json["gpu_telemetry"]["sampled_at"].as_f64().unwrap();
    assert!((sampled - since - window).abs() < 1e-6, "{json:#}");
    assert!(window > 0.0 && window < DEADLINE.as_secs_f64(), "{window}");

    let text = session.status(&now);
    let energy_row = text.row("energy (estimate)").unwrap();
    assert!(
        energy_row.starts_with("2.0000 kWh (7.20 MJ) over the ")
            && energy_row.ends_with("s since the session started"),
        "{text}"
    );
    let mj = per / 1e6;
    assert_eq!(
        text.row("per accepted share"),
        Some(format!("{mj:.2} MJ ({} accepted)", 2 * miners).as_str())
    );
    assert_eq!(
        text.row("per block"),
        Some(format!("{mj:.2} MJ ({} found)", 2 * miners).as_str())
    );
    assert_eq!(
        text.row("shares per kWh"),
        Some(format!("{miners}.00").as_str())
    );
    assert_eq!(text.row("cost (estimate)"), Some("0.5000 at 0.25 per kWh"));
    let energy_rows: Vec<&str> = text
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("cost (estimate)"))
        .filter(|line| line.starts_with("  worker "))
        .collect();
    assert_eq!(
        energy_rows,
        [
            "  worker 0:         1.0000 kWh, 1.80 MJ per accepted share (2), 2.00 shares per kWh",
            "  worker 1:         1.0000 kWh, 1.80 MJ per accepted share (2), 2.00 shares per kWh",
        ],
        "{text}"
    );
    text.stdout_has("energy figures are estimates over the window measured");

    // The session ends: so does its baseline.
    session.home.run(&["stop"], &[]).code(0);
    assert!(session.home.baseline().is_none());
}

#[test]
fn a_counter_reset_counts_from_the_reset_and_says_so() {
    let session = Session::start("", &[], &fake_nvml(1, "energy_mj=9000000000"));
    // The driver was reloaded: the counter restarted and reads 1.8e9 mJ.
    let env = fake_nvml(1, "energy_mj=1800000000");
    let json = session.settled_status(&env);
    let energy = &json["energy"];
    assert_eq!(energy["counter_reset"], true, "{energy:#}");
    assert_eq!(energy["gpus"][0]["counter_reset"], true);
    assert_eq!(energy["energy_j"], 1_800_000.0);
    assert_eq!(energy["energy_kwh"], 0.5);
    assert_eq!(energy["joules_per_share"], 900_000.0);
    assert_eq!(energy["shares_per_kwh"], 4.0);
    assert_eq!(energy["cost"], Value::Null);
    let text = session.status(&env);
    text.code(0).stdout_has(
        "note: the energy counter of GPU 0 went back (a driver reload) in the window: what it \
         counted before that is lost, so the energy is a lower bound",
    );
    assert_eq!(text.row("cost (estimate)"), None);
}

#[test]
fn no_share_yet_is_null_not_infinity() {
    let session = Session::start(
        "",
        &["--vllm-arg=--fake-blocks", "--vllm-arg=0"],
        &fake_nvml(1, "energy_mj=0"),
    );
    let env = fake_nvml(1, "energy_mj=360000000");
    let json = session.status_json(&env);
    let energy = &json["energy"];
    assert_eq!(json["stats"]["shares_submitted"], 0, "{json:#}");
    assert_eq!(energy["shares_accepted"], 0);
    assert_eq!(energy["energy_kwh"], 0.1);
    assert_eq!(energy["joules_per_share"], Value::Null, "{energy:#}");
    assert_eq!(energy["joules_per_block"], Value::Null);
    assert_eq!(energy["shares_per_kwh"], 0.0);
    let text = session.status(&env);
    assert_eq!(
        text.row("per accepted share"),
        Some("— (no accepted share yet)"),
        "{text}"
    );
    assert_eq!(text.row("per block"), Some("— (no block yet)"));
}

#[test]
fn watch_samples_again_on_every_refresh() {
    let session = Session::start("", &[], &fake_nvml(1, "energy_mj=0"));
    // One counter reading per refresh: 1 kWh, then 2 kWh.
    let env = fake_nvml(1, "energy_mj=3600000000/7200000000 power_mw=250000/260000");
    let mut command = jarvis_mine(
        JARVIS,
        session.home.path(),
        &["status", "--watch", "1", "--json"],
    );
    if let Some(host) = std::env::var_os("DOCKER_HOST") {
        command.env("DOCKER_HOST", host);
    }
    let mut child = command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let mut refreshes: Vec<Value> = Vec::new();
    while refreshes.len() < 2 {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a refresh");
        refreshes.push(serde_json::from_str(&line).unwrap());
    }
    let _ = child.kill();
    let _ = child.wait();
    let kwh: Vec<&Value> = refreshes
        .iter()
        .map(|r| &r["energy"]["energy_kwh"])
        .collect();
    assert_eq!(kwh, [&json!(1.0), &json!(2.0)]);
    let power: Vec<&Value> = refreshes
        .iter()
        .map(|r| &r["gpu_telemetry"]["gpus"][0]["power_w"])
        .collect();
    assert_eq!(power, [&json!(250.0), &json!(260.0)]);
}

// ---------------------------------------------------------------------------
// A session of host processes has no GPU section.

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pearl")
}

/// Stops every process labelled for the home, even after a failed test.
struct Processes<'a>(&'a Path);

impl Drop for Processes<'_> {
    fn drop(&mut self) {
        for (pid, _) in labelled_processes(self.0) {
            kill(pid, "-KILL");
        }
    }
}

#[test]
fn a_session_of_host_processes_has_no_gpu_section() {
    let home = Home::new();
    let _processes = Processes(home.path());
    let mut env = fake_nvml(8, "");
    env.extend([
        (
            "PATH".to_owned(),
            format!(
                "{}:{}",
                fixtures().join("bin").display(),
                std::env::var("PATH").unwrap()
            ),
        ),
        (
            "PYTHONPATH".to_owned(),
            fixtures().join("python").display().to_string(),
        ),
        ("TEST_GATEWAY_EXPECTED_PW".to_owned(), PASSWORD.to_owned()),
    ]);
    let (gateway, metrics) = (free_port().to_string(), free_port().to_string());
    home.run(
        &[
            "init",
            "--provider",
            "cpu-pearl",
            "--wallet",
            WALLET,
            "--gateway-port",
            &gateway,
            "--metrics-port",
            &metrics,
            "--yes",
        ],
        &env,
    )
    .code(0);
    home.run(&["start"], &env)
        .code(0)
        .stdout_has("Started cpu-pearl");
    let json = home.run(&["status", "--json"], &env).code(0).json();
    assert_eq!(json["state"], "running", "{json:#}");
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert!(
        !keys.iter().any(|k| *k == "gpu_telemetry" || *k == "energy"),
        "{keys:?}"
    );
    let text = home.run(&["status"], &env);
    text.code(0);
    assert!(!text.stdout.contains("GPU telemetry"), "{text}");
    assert!(!text.stdout.contains("energy"), "{text}");
    assert!(!home.path().join(BASELINE).exists());
    home.run(&["stop"], &env).code(0);
}

// ---------------------------------------------------------------------------
// Where the session's GPUs come from.

/// Removes the container when dropped (even after a failed assertion).
struct Created(String);

impl Drop for Created {
    fn drop(&mut self) {
        if let Ok(docker) = jarvis_mine::docker::Docker::connect() {
            let _ = docker.remove(&self.0);
        }
    }
}

/// A container of a session with GPUs cannot run here (no NVIDIA runtime),
/// but Docker records a create request before anything runs: what
/// `status` reads back is what the host created the container with.
#[test]
fn docker_keeps_the_gpu_request_the_host_created_a_container_with() {
    use jarvis_mine::docker::{ContainerSpec, Docker, GpuRequest};
    let docker = Docker::connect().expect("the test machine runs a Docker engine");
    let image = jarvis_mine_tests::fake_miner_image();
    for gpus in [
        GpuRequest::All,
        GpuRequest::Count(2),
        GpuRequest::DeviceIds(vec!["1".into(), "GPU-h100-3".into()]),
        GpuRequest::None,
    ] {
        let spec = ContainerSpec {
            image: image.clone(),
            gpus: gpus.clone(),
            ..ContainerSpec::default()
        };
        let created = Created(docker.create(&spec).unwrap());
        let state = docker.inspect(&created.0).unwrap().unwrap();
        let expected = match gpus {
            GpuRequest::None => vec![],
            gpus => vec![gpus],
        };
        assert_eq!(state.gpu_requests, expected);
    }
}
