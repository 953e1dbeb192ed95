//! The `metrics.scrape` import's parsing path: `parse_samples` over the
//! scraped Prometheus text (runtime/src/host/metrics.rs).
//!
//! Properties: never panics; at most `MAX_SAMPLES` samples; every sample
//! has a non-empty name that occurs in the text, label names that occur in
//! the text, and a value (NaN and ±Inf are legal Prometheus values); the
//! result is deterministic (families are sorted, not in hash order).
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
            text.contains(&sample.name),
            "sample name {:?} is not in the text",
            sample.name
        );
        for (key, _) in &sample.labels {
            assert!(
                text.contains(key.as_str()),
                "label name {key:?} is not in the text"
            );
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
