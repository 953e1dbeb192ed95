//! host-gpu's GPU telemetry through the real nvml-wrapper, loading the fake
//! `libnvidia-ml.so.1` from tests/fake-nvml, whose readings these tests set
//! with `FAKE_NVML_TELEMETRY`.
//!
//! As in nvml_facts.rs, the fake is configured through the environment, which
//! is process-wide, so each scenario samples in a fresh copy of this test
//! binary ([`sample_in_child`]) and the parent checks what it wrote.
//!
//! The last test reads the same readings through the `gpu-telemetry` import,
//! as a provider granted some of the GPUs receives them.
#![cfg(target_os = "linux")]

use std::process::Command;

use host_gpu::telemetry::{self, GpuTelemetry, Telemetry};
use host_gpu::{EnergyDelta, NVML_LIBRARY_ENV, energy_since};
use jarvis_mine::bindings::{
    Error, ExtraValue, MiningConfig, SoloTarget, SubmitTarget, WorkersSetting,
};
use jarvis_mine::facts::GpuSelection;
use jarvis_mine::host::Session;
use jarvis_mine::paths::Paths;
use jarvis_mine::sandbox::SandboxLimits;
use jarvis_mine_tests::run::{Run, jarvis_mine};
use jarvis_mine_tests::{
    H100, escape_component, h100s, in_child, load_with_policy, sandbox, user_policy,
};

/// Where the child writes its samples as a JSON array; unset outside a child.
const CHILD_OUTPUT_ENV: &str = "GPU_TELEMETRY_CHILD_OUTPUT";
/// The child's selection, `,`-separated; unset is every GPU.
const CHILD_SELECTION_ENV: &str = "GPU_TELEMETRY_CHILD_SELECTION";
/// How many samples the child takes, one after the other (default 1).
const CHILD_SAMPLES_ENV: &str = "GPU_TELEMETRY_CHILD_SAMPLES";

/// The scenario body, run only in a child process started by [`samples_with`].
/// It uses the process-wide [`telemetry::sample`], so later samples reuse the
/// NVML the first one loaded.
#[test]
#[ignore = "run by the other tests in a child process"]
fn sample_in_child() {
    let Some(output) = std::env::var_os(CHILD_OUTPUT_ENV) else {
        return;
    };
    let selection: Option<Vec<String>> = std::env::var(CHILD_SELECTION_ENV)
        .ok()
        .map(|ids| ids.split(',').map(str::to_owned).collect());
    let count: usize = std::env::var(CHILD_SAMPLES_ENV).map_or(1, |count| count.parse().unwrap());
    let samples: Vec<Telemetry> = (0..count)
        .map(|_| telemetry::sample(selection.as_deref()))
        .collect();
    std::fs::write(output, serde_json::to_string(&samples).unwrap()).unwrap();
}

/// Samples in a child process whose environment is this one without any NVML
/// or fake-NVML variables, with the fake library, plus `env`.
fn samples_with(env: &[(&str, &str)]) -> Vec<Telemetry> {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("telemetry.json");
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args(["sample_in_child", "--exact", "--ignored", "--quiet"]);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("FAKE_NVML_") || key_text.starts_with("GPU_TELEMETRY_CHILD_") {
            child.env_remove(key);
        }
    }
    child
        .env(NVML_LIBRARY_ENV, fake_library())
        .env(CHILD_OUTPUT_ENV, &output)
        .envs(env.iter().copied());
    let result = child.output().unwrap();
    assert!(
        result.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(output).unwrap()).unwrap()
}

/// One sample in a child; see [`samples_with`].
fn sample_with(env: &[(&str, &str)]) -> Telemetry {
    let mut samples = samples_with(env);
    assert_eq!(samples.len(), 1);
    samples.pop().unwrap()
}

fn fake_library() -> &'static str {
    jarvis_mine_tests::fake_nvml_library()
}

/// Distinct readings for GPU `index`, as a `FAKE_NVML_TELEMETRY` entry...
fn readings(index: u32) -> String {
    let i = u64::from(index);
    format!(
        "power_mw={} energy_mj={} gpu_temp_c={} memory_temp_c={} fan_percent={} \
         gpu_util_percent={} memory_util_percent={} memory_used_mib={} \
         sm_clock_mhz={} memory_clock_mhz={} clocks_event_reasons={:#x} \
         ecc_corrected={} ecc_uncorrected={} pstate={}",
        412_345 + i * 1000,
        123_456_789_000 + i,
        61 + i,
        70 + i,
        40 + i,
        97 - i,
        55 + i,
        70_000 + i * 100,
        1980 - i * 10,
        2619 - i,
        [0x0, 0x4, 0x20 | 0x40, 0x1, 0x8, 0x80, 0x10, 0x100][index as usize % 8],
        3 + i,
        i,
        i % 16,
    )
}

/// ...and what [`telemetry::sample`] should make of them.
fn expected(index: u32) -> GpuTelemetry {
    let i = u64::from(index);
    let names: &[&str] = match index % 8 {
        0 => &[],
        1 => &["sw_power_cap"],
        2 => &["sw_thermal_slowdown", "hw_thermal_slowdown"],
        3 => &["gpu_idle"],
        4 => &["hw_slowdown"],
        5 => &["hw_power_brake_slowdown"],
        6 => &["sync_boost"],
        _ => &["display_clock_setting"],
    };
    GpuTelemetry {
        index,
        uuid: Some(format!("GPU-h100-{index}")),
        name: Some(H100.into()),
        power_w: Some(412.345 + f64::from(index)),
        energy_mj: Some(123_456_789_000 + i),
        gpu_temp_c: Some(61 + index),
        memory_temp_c: Some(70 + index),
        fan_percent: Some(40 + index),
        gpu_util_percent: Some(97 - index),
        memory_util_percent: Some(55 + index),
        memory_used_mib: Some(70_000 + i * 100),
        memory_total_mib: Some(81_559),
        sm_clock_mhz: Some(1980 - index * 10),
        memory_clock_mhz: Some(2619 - index),
        throttle_reasons: Some(names.iter().map(|name| (*name).to_owned()).collect()),
        ecc_volatile_corrected: Some(3 + i),
        ecc_volatile_uncorrected: Some(i),
        performance_state: Some(format!("P{}", index % 16)),
    }
}

/// Samples `count` H100s with [`readings`] and checks every one reads back.
fn reads_back_exactly(count: u32) {
    let telemetry = (0..count).map(readings).collect::<Vec<_>>().join(";");
    let sample = sample_with(&[
        ("FAKE_NVML_GPUS", &h100s(count)),
        ("FAKE_NVML_TELEMETRY", &telemetry),
    ]);
    assert_eq!(sample.note, None);
    assert_eq!(sample.gpus, (0..count).map(expected).collect::<Vec<_>>());
    assert!(sample.sampled_at > 1.7e9, "{}", sample.sampled_at);
}

#[test]
fn one_gpu_reads_back_exactly() {
    reads_back_exactly(1);
}

#[test]
fn two_gpus_read_back_exactly() {
    reads_back_exactly(2);
}

#[test]
fn eight_gpus_read_back_exactly() {
    reads_back_exactly(8);
}

#[test]
fn the_default_fake_has_every_reading() {
    let sample = sample_with(&[]);
    assert_eq!(sample.note, None);
    assert_eq!(sample.gpus.len(), 3);
    let rtx = &sample.gpus[2];
    assert_eq!(rtx.name.as_deref(), Some("NVIDIA GeForce RTX 4090"));
    assert_eq!(rtx.power_w, Some(70.0));
    assert_eq!(
        rtx.throttle_reasons.as_deref(),
        Some(&["gpu_idle".to_owned()][..])
    );
    assert_eq!(rtx.performance_state.as_deref(), Some("P0"));
    assert_eq!(
        (rtx.memory_used_mib, rtx.memory_total_mib),
        (Some(0), Some(24_564))
    );
}

#[test]
fn unsupported_and_failing_readings_are_absent_and_cost_only_themselves() {
    // GPU 0 is a passive board without HBM sensors or ECC; on GPU 1 every
    // query fails, some as not supported and some with other errors.
    let gpu0 = "fan_percent=? memory_temp_c=? ecc_corrected=? ecc_uncorrected=? pstate=32";
    let gpu1 = "power_mw=? energy_mj=! gpu_temp_c=? memory_temp_c=! fan_percent=! \
                gpu_util_percent=? memory_used_mib=! sm_clock_mhz=? memory_clock_mhz=! \
                clocks_event_reasons=? ecc_corrected=! ecc_uncorrected=? pstate=?";
    let sample = sample_with(&[
        (
            "FAKE_NVML_GPUS",
            &format!("{};NVIDIA T4,7.5,15360,?", h100s(1)),
        ),
        ("FAKE_NVML_TELEMETRY", &format!("{gpu0};{gpu1}")),
    ]);
    assert_eq!(sample.note, None);
    let defaults = GpuTelemetry {
        index: 0,
        uuid: Some("GPU-h100-0".into()),
        name: Some(H100.into()),
        power_w: Some(70.0),
        energy_mj: Some(1_000_000),
        gpu_temp_c: Some(33),
        memory_temp_c: None,
        fan_percent: None,
        gpu_util_percent: Some(0),
        memory_util_percent: Some(0),
        memory_used_mib: Some(0),
        memory_total_mib: Some(81_559),
        sm_clock_mhz: Some(345),
        memory_clock_mhz: Some(1593),
        throttle_reasons: Some(vec!["gpu_idle".into()]),
        ecc_volatile_corrected: None,
        ecc_volatile_uncorrected: None,
        performance_state: None,
    };
    assert_eq!(sample.gpus[0], defaults);
    // Only the identity is left; the UUID is not supported either.
    let t4 = GpuTelemetry {
        index: 1,
        name: Some("NVIDIA T4".into()),
        ..GpuTelemetry::default()
    };
    assert_eq!(sample.gpus[1], t4);
    // Absent readings are absent from the JSON `--json` will print.
    let json = serde_json::to_value(&sample.gpus[1]).unwrap();
    assert_eq!(json, serde_json::json!({"index": 1, "name": "NVIDIA T4"}));
}

#[test]
fn unknown_throttle_bits_are_named_by_value() {
    let sample = sample_with(&[
        ("FAKE_NVML_GPUS", &h100s(1)),
        ("FAKE_NVML_TELEMETRY", "clocks_event_reasons=0x244"),
    ]);
    assert_eq!(
        sample.gpus[0].throttle_reasons,
        Some(vec![
            "sw_power_cap".to_owned(),
            "hw_thermal_slowdown".to_owned(),
            "unknown_0x200".to_owned()
        ])
    );
}

fn indexes(sample: &Telemetry) -> Vec<u32> {
    sample.gpus.iter().map(|gpu| gpu.index).collect()
}

#[test]
fn selection_by_index() {
    let sample = sample_with(&[
        ("FAKE_NVML_GPUS", &h100s(8)),
        (CHILD_SELECTION_ENV, "6, 1,3"),
    ]);
    assert_eq!(indexes(&sample), [1, 3, 6]);
    assert_eq!(sample.gpus[1].uuid.as_deref(), Some("GPU-h100-3"));
    assert_eq!(sample.note, None);
}

#[test]
fn selection_by_uuid_and_index_together() {
    let sample = sample_with(&[
        ("FAKE_NVML_GPUS", &h100s(8)),
        (CHILD_SELECTION_ENV, "gpu-H100-5,GPU-h100-2,7,5"),
    ]);
    assert_eq!(indexes(&sample), [2, 5, 7]);
    assert_eq!(sample.note, None);
}

#[test]
fn selected_gpus_that_do_not_exist_are_named() {
    let sample = sample_with(&[
        ("FAKE_NVML_GPUS", &h100s(2)),
        (CHILD_SELECTION_ENV, "1,9,GPU-nope"),
    ]);
    assert_eq!(indexes(&sample), [1]);
    assert_eq!(
        sample.note.as_deref(),
        Some("no GPU 9, GPU-nope among the 2 NVML lists")
    );
}

#[test]
fn an_empty_selection_selects_nothing() {
    let sample = sample_with(&[("FAKE_NVML_GPUS", &h100s(2)), (CHILD_SELECTION_ENV, "")]);
    assert!(sample.gpus.is_empty());
    assert_eq!(sample.note, None);
}

#[test]
fn a_lost_gpu_is_noted_when_it_may_be_selected() {
    let gpus = format!("{};lost", h100s(1));
    let all = sample_with(&[("FAKE_NVML_GPUS", &gpus)]);
    assert_eq!(indexes(&all), [0]);
    let note = all.note.unwrap();
    assert!(
        note.starts_with("NVML could not open GPU 1: ") && note.contains("fell off the bus"),
        "{note}"
    );
    let other = sample_with(&[("FAKE_NVML_GPUS", &gpus), (CHILD_SELECTION_ENV, "0")]);
    assert_eq!((indexes(&other), other.note), (vec![0], None));
}

#[test]
fn no_nvml_library_is_no_telemetry_with_the_reason() {
    let sample = sample_with(&[(NVML_LIBRARY_ENV, "/nonexistent/libnvidia-ml.so.1")]);
    assert!(sample.gpus.is_empty());
    let note = sample.note.unwrap();
    assert!(
        note.starts_with(
            "no telemetry (NVIDIA driver library /nonexistent/libnvidia-ml.so.1 could not be loaded ("
        ),
        "{note}"
    );
}

#[test]
fn an_nvml_that_fails_to_initialise_is_no_telemetry_with_the_reason() {
    let sample = sample_with(&[("FAKE_NVML_INIT_FAIL", "1")]);
    assert!(sample.gpus.is_empty());
    assert_eq!(
        sample.note.as_deref(),
        Some("no telemetry (NVML failed to initialise: NVIDIA driver is not loaded)")
    );
}

#[test]
fn the_energy_counter_counts_up_and_a_reset_is_seen() {
    // GPU 1's driver is reloaded between the second and third samples.
    let samples = samples_with(&[
        ("FAKE_NVML_GPUS", &h100s(2)),
        (
            "FAKE_NVML_TELEMETRY",
            "energy_mj=1000000/1400000/1900000; energy_mj=5000000/5250000/300",
        ),
        (CHILD_SAMPLES_ENV, "3"),
    ]);
    let energy = |gpu: usize| -> Vec<u64> {
        samples
            .iter()
            .map(|sample| sample.gpus[gpu].energy_mj.unwrap())
            .collect()
    };
    assert_eq!(energy(0), [1_000_000, 1_400_000, 1_900_000]);
    assert_eq!(energy(1), [5_000_000, 5_250_000, 300]);
    let deltas = |gpu: usize| -> Vec<EnergyDelta> {
        energy(gpu)
            .windows(2)
            .map(|pair| energy_since(pair[0], pair[1]))
            .collect()
    };
    let up = |used_mj| EnergyDelta {
        used_mj,
        reset: false,
    };
    assert_eq!(deltas(0), [up(400_000), up(500_000)]);
    assert_eq!(
        deltas(1),
        [
            up(250_000),
            EnergyDelta {
                used_mj: 300,
                reset: true
            }
        ]
    );
    let total: f64 = deltas(0)
        .iter()
        .chain(&deltas(1))
        .map(EnergyDelta::joules)
        .sum();
    assert_eq!(total, 1150.3);
    assert!(
        samples
            .windows(2)
            .all(|pair| pair[0].sampled_at <= pair[1].sampled_at)
    );
}

// ---------------------------------------------------------------------------
// The `gpu-telemetry` import.

/// `Debug` text with its field names in WIT's kebab case (`power_w: ` to
/// `power-w: `), as the guest's bindings name them.
fn kebab_fields(debug: &str) -> String {
    debug
        .split(", ")
        .map(|part| match part.split_once(": ") {
            Some((name, value)) if name.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
                format!("{}: {value}", name.replace('_', "-"))
            }
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a provider granted `gpu-telemetry` and some of four H100s, each with
/// distinct readings, receives: the readings of exactly the GPUs its grant
/// and the user's selection both name, value for value. The escape guest
/// prints each reading it received with `Debug`; the record's fields are
/// host-gpu's, by name and order, so each line is [`expected`]'s.
#[test]
fn a_granted_provider_reads_the_exact_readings_of_its_gpus_through_the_import() {
    let readings = (0..4).map(readings).collect::<Vec<_>>().join(";");
    if !in_child(
        "a_granted_provider_reads_the_exact_readings_of_its_gpus_through_the_import",
        &[
            (NVML_LIBRARY_ENV, fake_library()),
            ("FAKE_NVML_GPUS", &h100s(4)),
            ("FAKE_NVML_TELEMETRY", &readings),
        ],
    ) {
        return;
    }
    let sandbox = sandbox(SandboxLimits::default());
    let home = tempfile::tempdir().unwrap();
    let cases: [(&str, Option<&str>, &[u32]); 3] = [
        (r#""1", "GPU-h100-3""#, None, &[1, 3]),
        (r#""*""#, Some("2,0"), &[0, 2]),
        (r#""0", "1", "2""#, Some("GPU-h100-1, 2, 3"), &[1, 2]),
    ];
    for (gpus, selection, indexes) in cases {
        let policy = user_policy(&format!(
            "[providers.escape]\ncapabilities = [\"gpu-telemetry\"]\ngpus = [{gpus}]\n"
        ));
        let provider = load_with_policy(&sandbox, &escape_component(), &policy);
        let session = Session {
            gpu_selection: GpuSelection::new(selection),
            ..Session::new(
                "telemetry-session",
                Paths::with_home(home.path()),
                Err("no Docker in this test".into()),
            )
        };
        let config = MiningConfig {
            provider: "escape".into(),
            wallet_address: "prl1qtelemetry".into(),
            submit_target: SubmitTarget::Solo(SoloTarget {
                pearld_rpc_url: "http://127.0.0.1:44107".into(),
            }),
            fee_bps: 0,
            fee_payout_address: None,
            extra: vec![("attack".into(), ExtraValue::Text("gpu-telemetry".into()))],
            workers: WorkersSetting::Auto,
            gpus: Vec::new(),
        };
        let report = match provider.start(&sandbox, provider.host_context(session), &config) {
            Ok(Err(Error::Failed(report))) => report,
            other => panic!("gpus = [{gpus}], selection {selection:?}: {other:?}"),
        };
        let expected: Vec<String> = std::iter::once(format!("{} GPUs", indexes.len()))
            .chain(indexes.iter().map(|&index| {
                kebab_fields(&format!("{:?}", expected(index))).replacen(
                    "GpuTelemetry",
                    "GpuReading",
                    1,
                )
            }))
            .collect();
        assert_eq!(
            report.lines().collect::<Vec<_>>(),
            expected,
            "gpus = [{gpus}], selection {selection:?}"
        );
    }
}

/// End to end through `jarvis mine start`: the host gives the import the
/// user's `cuda_visible_devices` as it narrows `detect`'s facts, so an
/// installed provider granted GPUs 1 and 2 of four, with
/// `cuda_visible_devices = "2,3"`, reads GPU 2 alone. (The escape guest's
/// `start` fails with what it read.)
#[test]
fn start_reads_the_gpus_the_grant_and_cuda_visible_devices_both_name() {
    let home = tempfile::tempdir().unwrap();
    let gpus = h100s(4);
    let jarvis = |args: &[&str]| {
        let mut command = jarvis_mine(env!("CARGO_BIN_EXE_jarvis-under-test"), home.path(), args);
        command
            .env(NVML_LIBRARY_ENV, fake_library())
            .env("FAKE_NVML_GPUS", &gpus)
            .env("PEARLD_RPC_PASSWORD", "telemetry-test-password");
        Run::of(format!("jarvis mine {}", args.join(" ")), &mut command)
    };
    let escape = home.path().join("escape.wasm");
    std::fs::write(&escape, escape_component()).unwrap();
    jarvis(&["providers", "install", "--yes", escape.to_str().unwrap()]).code(0);
    std::fs::write(
        home.path().join("mining/policy.toml"),
        "[providers.escape]\ncapabilities = [\"gpu-telemetry\"]\ngpus = [\"1\", \"2\"]\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        r#"
[mining]
provider = "escape"
wallet_address = "prl1qtelemetry"
submit_target = "solo"

[mining.extra]
attack = "gpu-telemetry"
cuda_visible_devices = "2,3"
"#,
    )
    .unwrap();
    let run = jarvis(&["start", "--no-wait"]);
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("1 GPUs"), "{run}");
    assert!(
        run.stderr
            .contains("GpuReading { index: 2, uuid: Some(\"GPU-h100-2\")"),
        "{run}"
    );
    for absent in ["index: 0,", "index: 1,", "index: 3,"] {
        assert!(!run.stderr.contains(absent), "{absent}: {run}");
    }
}
