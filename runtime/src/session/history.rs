//! The host's record of the last session that ended in this home,
//! `<home>/runtime/mining-last-session.json`: the evidence that tells
//! `stopped` (a session ran here) from `configured` (none ever did) once
//! the sidecar and the containers are gone. Written by the host only, when
//! it ends a session (`stop`, a failed `start`, a stale session repaired).

use crate::atomic_file;
use crate::home::HomePath;
use serde::{Deserialize, Serialize};

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    Stopped,
    StartFailed,
    /// Its container died or vanished, and the host cleaned up after it.
    Repaired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSession {
    pub provider: String,
    pub session_id: Option<String>,
    pub ending: Ending,
    /// Unix seconds.
    pub ended_at: u64,
}

/// Records `last` (atomically, mode 0600).
pub fn record(path: &HomePath, last: &LastSession) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(last).expect("a LastSession always serialises");
    path.write_atomically(atomic_file::Mode::Fixed(0o600), &text)
}

/// Whether a session ever ended here. Any file at the path counts: only
/// the host writes it, and a damaged one still says a session ran.
pub fn any(path: &HomePath) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_sessions_are_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::home::root(dir.path()).join("runtime/mining-last-session.json");
        assert!(!any(&path));
        let last = LastSession {
            provider: "vllm-pearl".into(),
            session_id: Some("0123".into()),
            ending: Ending::StartFailed,
            ended_at: 1_760_000_000,
        };
        record(&path, &last).unwrap();
        assert!(any(&path));
        let text = std::fs::read_to_string(path.absolute()).unwrap();
        assert!(text.contains("\"ending\": \"start-failed\""), "{text}");
        assert_eq!(serde_json::from_str::<LastSession>(&text).unwrap(), last);
    }
}
