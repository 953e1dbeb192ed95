//! Sizes as users know them: memory the way `nvidia-smi` and `free -g` show
//! it (MiB, or GiB = MiB / 1024 with one decimal), with a GPU's marketing
//! class where it helps ("79.6 GiB (80 GB class)").

/// Capacities GPUs are sold by, in "GB" as vendors print them.
const GPU_CLASSES_GB: [u32; 24] = [
    4, 6, 8, 10, 11, 12, 16, 20, 24, 32, 40, 48, 64, 80, 94, 96, 128, 141, 144, 180, 192, 256, 288,
    512,
];

/// `mib` as GiB with one decimal: "79.6 GiB".
pub fn gib(mib: u64) -> String {
    format!("{:.1} GiB", mib as f64 / 1024.0)
}

/// A GPU's memory: "79.6 GiB (80 GB class)", or just the GiB when it is no
/// size GPUs are sold by.
pub fn gpu_memory(mib: u64) -> String {
    match marketing_class(mib) {
        Some(class) => format!("{} ({class} GB class)", gib(mib)),
        None => gib(mib),
    }
}

/// The largest sold capacity the card reaches, allowing the 2 % that
/// vendors' "GB" (really GiB, less reserved memory) differ by: an "80 GB"
/// H100 reports 79.6 GiB, a "141 GB" H200 140.4 GiB.
fn marketing_class(mib: u64) -> Option<u32> {
    let reach = mib as f64 / 1024.0 * 1.02;
    let class = GPU_CLASSES_GB
        .iter()
        .rev()
        .find(|&&gb| f64::from(gb) <= reach)?;
    // Far below the next class up is some other size (a partition, say).
    (f64::from(*class) >= mib as f64 / 1024.0 * 0.9).then_some(*class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_read_as_sold() {
        for (mib, shown) in [
            (81_559, "79.6 GiB (80 GB class)"),
            (81_920, "80.0 GiB (80 GB class)"),
            (143_771, "140.4 GiB (141 GB class)"),
            (24_564, "24.0 GiB (24 GB class)"),
            (95_830, "93.6 GiB (94 GB class)"),
            (40_960, "40.0 GiB (40 GB class)"),
            (131_072, "128.0 GiB (128 GB class)"),
        ] {
            assert_eq!(gpu_memory(mib), shown, "{mib} MiB");
        }
        // A MIG slice of an H100 is no card size.
        assert_eq!(gpu_memory(9_984 + 5_000), "14.6 GiB");
        assert_eq!(gib(0), "0.0 GiB");
        assert_eq!(gpu_memory(100), "0.1 GiB");
    }
}
