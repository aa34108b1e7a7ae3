//! `flowgatectl`: the operator CLI (see `mgmt::cli`).

fn main() -> std::process::ExitCode {
    mgmt::cli::main()
}
