//! The `metrics.scrape` import's parsing path: `parse_samples` over the
//! scraped Prometheus text (runtime/src/host/metrics.rs).
//!
//! Properties: never panics; at most `MAX_SAMPLES` samples; every sample
//! has a non-empty name that occurs in the text, and label names that do,
//! either as written or, for a quoted name (Prometheus 3's UTF-8 names,
//! `{"my.metric", "my.label"="v"} 1`), in its escaped form; the result is
//! deterministic (families are sorted, not in hash order; values compared
//! bit for bit, as NaN and ±Inf are legal values).
#![no_main]

use jarvis_mine::host::metrics::{MAX_SAMPLES, parse_samples};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(samples) = parse_samples(text) else {
        return;
    };
    assert!(
        samples.len() <= MAX_SAMPLES,
        "{} samples > MAX_SAMPLES",
        samples.len()
    );
    for sample in &samples {
        assert!(!sample.name.is_empty(), "a sample without a name");
        assert!(
            written(text, &sample.name),
            "sample name {:?} is not in the text",
            sample.name
        );
        for (key, _) in &sample.labels {
            assert!(written(text, key), "label name {key:?} is not in the text");
        }
    }
    let again = parse_samples(text).expect("the same text parsed once");
    assert_eq!(again.len(), samples.len(), "non-deterministic sample count");
    for (a, b) in samples.iter().zip(&again) {
        assert!(
            a.name == b.name && a.labels == b.labels && a.value.to_bits() == b.value.to_bits(),
            "non-deterministic samples: {a:?} vs {b:?}"
        );
    }
});

/// `name` is in `text` as written, or quoted with the text format's three
/// escapes (`\\`, `\n`, `\"`).
fn written(text: &str, name: &str) -> bool {
    let escaped = name
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('"', "\\\"");
    text.contains(name) || text.contains(&format!("\"{escaped}\""))
}
