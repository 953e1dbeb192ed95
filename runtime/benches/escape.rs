//! The cost of the escaping writer every human output goes through: a
//! doctor-sized report (about 40 rows) written plain and through it.
//!
//! Run with `cargo bench -p jarvis-mine --bench escape`; figures are in
//! docs/benchmarks.md.

use criterion::{Criterion, criterion_group, criterion_main};
use jarvis_mine::cli::output::{BAD, Escaping, GOOD, paint};
use std::hint::black_box;
use std::io::Write;

fn report(out: &mut impl Write) -> std::io::Result<()> {
    for row in 0..40 {
        let verdict = if row % 3 == 0 {
            paint(BAD, "FAIL")
        } else {
            paint(GOOD, "OK")
        };
        let name = format!("check {row}");
        writeln!(
            out,
            "  {name:<22} {:<45} {verdict}",
            "NVIDIA H100 80GB HBM3 (9.0, 81559 MiB), driver 570.1"
        )?;
    }
    Ok(())
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("doctor report, 40 rows");
    group.bench_function("plain", |b| {
        let mut bytes = Vec::with_capacity(8 << 10);
        b.iter(|| {
            bytes.clear();
            report(&mut bytes).unwrap();
            black_box(bytes.len())
        })
    });
    group.bench_function("escaping", |b| {
        let mut bytes = Vec::with_capacity(8 << 10);
        b.iter(|| {
            bytes.clear();
            report(&mut Escaping::new(&mut bytes)).unwrap();
            black_box(bytes.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
