fn main() -> std::process::ExitCode {
    jarvis_mine::cli::main()
}
