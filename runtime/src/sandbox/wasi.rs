//! The WASI context every call gets: no files, no environment, no sockets,
//! frozen clocks and seeded randomness, so the same inputs give the same answer.

use super::CallState;
use std::time::Duration;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::random::Deterministic;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// The instant every guest sees as "now": 2026-01-01T00:00:00Z.
const FROZEN_WALL_CLOCK: Duration = Duration::from_secs(1_767_225_600);

/// Seeds for the guest's random sources (deterministic by design).
const RANDOM_SEED: [u8; 8] = *b"jarvis-m";
const INSECURE_RANDOM_SEED: u128 = 0x6a61_7276_6973;

struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        FROZEN_WALL_CLOCK
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        0
    }
}

/// A context with no ambient authority whose output goes to `stdout`/`stderr`.
pub fn pure_context(stdout: MemoryOutputPipe, stderr: MemoryOutputPipe) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(stdout)
        .stderr(stderr)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .secure_random(Deterministic::new(RANDOM_SEED.to_vec()))
        .insecure_random(Deterministic::new(RANDOM_SEED.to_vec()))
        .insecure_random_seed(INSECURE_RANDOM_SEED)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// The monotonic-clock interface our WASI host implements.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// A timer that is due at once.
struct Due;

#[wasmtime_wasi::async_trait]
impl Pollable for Due {
    async fn ready(&mut self) {}
}

/// Replaces the monotonic clock's timers with ones that are due at once.
///
/// The guest's clock is frozen, so no time passes for it and a timer is due
/// as soon as it is set. WASI's own timers would sleep for real inside the
/// host, where the epoch deadline cannot interrupt: a guest asking for a
/// `u64::MAX` nanosecond sleep would hang `doctor` forever.
pub fn freeze_timers(linker: &mut Linker<CallState>) -> anyhow::Result<()> {
    fn due(
        table: &mut wasmtime::component::ResourceTable,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let timer = table.push(Due)?;
        subscribe(table, timer)
    }
    linker.allow_shadowing(true);
    let mut clock = linker
        .instance(MONOTONIC_CLOCK)
        .map_err(anyhow::Error::from)?;
    clock
        .func_wrap("subscribe-duration", |mut store, (_,): (u64,)| {
            Ok((due(&mut store.data_mut().table)?,))
        })
        .map_err(anyhow::Error::from)?;
    clock
        .func_wrap("subscribe-instant", |mut store, (_,): (u64,)| {
            Ok((due(&mut store.data_mut().table)?,))
        })
        .map_err(anyhow::Error::from)?;
    linker.allow_shadowing(false);
    Ok(())
}
