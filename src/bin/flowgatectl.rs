//! `flowgatectl`: the operator CLI (see the `ctl` crate); with `--zone NAME` or `--all-zones`
//! it drives the zones of a firewall through a fleet endpoint (see `fleet::ctl`).

fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if fleet::ctl::wants_zones(&argv) {
        return fleet::ctl::main(&argv);
    }
    ctl::main()
}
