//! Idle-fill (being written).
