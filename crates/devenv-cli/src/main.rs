fn main() -> std::process::ExitCode {
    devenv_cli::run()
}
