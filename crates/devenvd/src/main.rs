fn main() -> std::process::ExitCode {
    devenvd::main()
}
