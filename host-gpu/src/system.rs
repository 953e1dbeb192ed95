//! OS, architecture, CPU and memory. On Linux the CPU model and RAM come from
//! `/proc` (cheap text reads), on macOS from `sysctl`; elsewhere they are unknown.

use std::fs;

/// The host's platform, CPU and memory; `None` is unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemFacts {
    /// "linux", "darwin", "windows".
    pub os: String,
    /// "x86_64", "aarch64".
    pub arch: String,
    pub cpu_model: Option<String>,
    /// Logical CPUs this process may use (affinity and cgroup quotas applied).
    pub cpu_cores: Option<u32>,
    pub ram_mib: Option<u64>,
}

pub fn system_facts() -> SystemFacts {
    let os = os_name(std::env::consts::OS);
    let (cpu_model, ram_mib) = if os == "darwin" {
        (
            sysctl("machdep.cpu.brand_string"),
            sysctl("hw.memsize")
                .and_then(|bytes| bytes.parse::<u64>().ok())
                .map(|b| b >> 20),
        )
    } else {
        (
            fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|text| cpu_model(&text)),
            fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|text| mem_total_mib(&text)),
        )
    };
    SystemFacts {
        os: os.into(),
        arch: std::env::consts::ARCH.into(),
        cpu_model,
        cpu_cores: std::thread::available_parallelism()
            .ok()
            .and_then(|n| u32::try_from(n.get()).ok()),
        ram_mib,
    }
}

/// One `sysctl -n` value (macOS).
fn sysctl(name: &str) -> Option<String> {
    let out = std::process::Command::new("sysctl")
        .args(["-n", name])
        .output()
        .ok()?;
    let value = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !value.is_empty()).then_some(value)
}

/// The facts format names macOS "darwin" (as Python's `sys.platform` does).
fn os_name(rust_os: &str) -> &str {
    match rust_os {
        "macos" => "darwin",
        other => other,
    }
}

/// The first "model name" in `/proc/cpuinfo` (x86; many ARM kernels omit it).
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name" && !value.trim().is_empty()).then(|| value.trim().to_owned())
    })
}

/// `MemTotal` from `/proc/meminfo`, which the kernel gives in KiB.
fn mem_total_mib(meminfo: &str) -> Option<u64> {
    let kib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9654 96-Core Processor\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("AMD EPYC 9654 96-Core Processor")
        );
    }

    #[test]
    fn cpuinfo_without_model_name_is_unknown() {
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n";
        assert_eq!(cpu_model(arm), None);
    }

    #[test]
    fn mem_total_is_converted_from_kib() {
        let meminfo = "MemTotal:       65848332 kB\nMemFree:        1234 kB\n";
        assert_eq!(mem_total_mib(meminfo), Some(64_305));
        assert_eq!(mem_total_mib("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn macos_is_darwin() {
        assert_eq!(os_name("macos"), "darwin");
        assert_eq!(os_name("linux"), "linux");
    }

    #[test]
    fn this_host_reports_its_platform() {
        let facts = system_facts();
        assert_eq!(facts.arch, std::env::consts::ARCH);
        assert!(facts.cpu_cores.is_some_and(|n| n >= 1));
        if cfg!(target_os = "linux") {
            assert!(facts.ram_mib.is_some_and(|mib| mib > 0));
        }
    }
}
