//! `jarvis`: the command line. All behaviour lives in the library.

fn main() -> std::process::ExitCode {
    jarvis_mine::cli::main()
}
