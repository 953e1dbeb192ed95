//! The miner loop we ship (runtime/miner-loops/pearl_miner_loop.py) and the
//! test gateway, through their own Python tests (tests/python): protocol
//! framing, the MPS adapter's shape checks, reconnection, a search that
//! never blocks shutdown, against the test gateway on loopback.

use jarvis_mine_tests::run::Run;
use std::path::Path;
use std::process::Command;

#[test]
fn the_python_suite_of_the_miner_loop_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = Run::of(
        "python3 -m unittest discover -s tests/python",
        Command::new("python3")
            .args(["-m", "unittest", "discover", "-s", "tests/python", "-v"])
            .current_dir(&root)
            .env("PYTHONPATH", root.join("tests/fixtures/pearl/python")),
    );
    run.code(0);
    assert!(run.stderr.contains("\nOK"), "{run}");
}
