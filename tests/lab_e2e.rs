//! Network-namespace end-to-end tests: real programs (curl, ping, ping6, iperf3, python
//! TCP sessions, the stock AWS CLI) talk through the real DPDK data path between the lab's
//! namespaces. The scenarios are shell scripts (they are the lab's own tools); these tests
//! run them under the lab lock and check that nothing is left behind. The web console's
//! story runs the same way, in Chromium.

mod common;

use std::process::Command;

fn run_locked(script: &str, args: &[&str]) {
    common::require_root();
    let repo = common::repo();
    let out = Command::new("flock")
        .arg("-w")
        .arg("900")
        .arg("/tmp/flowgate-lab.lock")
        .arg(repo.join(script))
        .args(args)
        .env("FLOWGATE_LAB_LOCKED", "1")
        .output()
        .expect("run flock (util-linux)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    assert_no_lab_left();
}

fn assert_no_lab_left() {
    let ns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    let ns = String::from_utf8_lossy(&ns.stdout);
    assert!(
        !ns.lines().any(|l| l.starts_with("fg-client")
            || l.starts_with("fg-server")
            || l.starts_with("fg-far")
            // The fleet lab's zones.
            || l.starts_with("fg-a-")
            || l.starts_with("fg-b-")),
        "namespaces left behind: {ns}"
    );
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    for l in [
        "fg-c-out",
        "fg-s-out",
        "fg-c-in",
        "fg-s-in",
        "fg-r-in",
        "fg-far-in",
        "fg-ac-out",
        "fg-as-out",
        "fg-bc-out",
        "fg-bs-out",
    ] {
        assert!(!links.contains(l), "link {l} left behind");
    }
}

/// The README's main command: HTTP over IPv4 and IPv6, ping, ping6, a bulk transfer, then
/// the flow-operations story (capture, reload, verdict-changed capture and flush with a real
/// reset, flow log, AWS CLI capture and flush), then teardown.
#[test]
fn lab_demo_and_flow_operations_story() {
    run_locked("scripts/lab.sh", &[]);
}

/// Bad reload refused with file:line and the old policy kept; a reload leaves open
/// connections alone; a restart makes the next send midstream and the client is reset.
#[test]
fn policy_reload_and_restart_midstream_reject() {
    run_locked("scripts/tests/lab-reload-restart.sh", &[]);
}

/// Flow-table exhaustion through the lab: a flood of new flows from random sources while a
/// long-lived TCP session crosses the appliance; the session never stalls, the table stays
/// within capacity (emergency mode, eviction), every packet is accounted for, RSS is flat.
#[test]
fn flood_of_new_flows_keeps_the_established_session_alive() {
    run_locked("scripts/tests/lab-flood.sh", &[]);
}

/// The README's operator examples, executed literally (the marked ```sh blocks read from
/// README.md): `eval "$(scripts/lab.sh up)"`, then flowgatectl and the AWS CLI as written.
#[test]
fn readme_operator_examples_work_literally() {
    run_locked("scripts/tests/readme-examples.sh", &[]);
}

/// Fragments and ICMP errors with the kernel's own fragmentation and ICMP: a 4,000-byte UDP
/// datagram crosses when its port is allowed and none of its fragments when denied (IPv4
/// and IPv6); `ping -M do` learns the path MTU and `ping -t 1` gets "time exceeded" back
/// through a router namespace, under a drop_strict policy.
#[test]
fn fragments_and_icmp_errors_cross_as_their_flow() {
    run_locked("scripts/tests/lab-fragments-icmp.sh", &[]);
}

/// The web console in Chromium (playwright-core driving Debian's chromium) against the lab:
/// sign in (a wrong secret refused), capture the long-lived session by addresses and port,
/// flush it from the results after a confirmation naming the stream exception policy, the
/// real client is reset, the history shows both COMPLETED; 21 filters cannot be submitted;
/// an invalid CIDR shows the API's message; axe-core finds no serious violation.
#[test]
fn web_console_story_in_chromium() {
    run_locked("scripts/tests/console-e2e.sh", &[]);
}

/// The same console served by flowgate-fleet over the two-zone fleet lab: it asks for the
/// zone first; in zone b a capture of every lab address finds zone b's session only (its
/// StartFlowCapture carries zone b, its charts read zone b's appliance through the fleet);
/// the history lists one zone or every zone, and following zone a's operation switches
/// the console to zone a; no request leaves for an appliance.
#[test]
fn fleet_console_zone_selector_in_chromium() {
    run_locked("scripts/tests/fleet-console-e2e.sh", &[]);
}

/// TCP tracking under attack through the lab: a live session survives spoofed RSTs and
/// FINs with out-of-window (and one inexact in-window) sequence numbers from both ends, and
/// a flush still ends it; 100 spoofed ACKs of one flow under `reject` draw one RST pair;
/// a spoofed ACK flood under `continue` leaves the established session and new
/// connections working (the pickups are evicted first).
#[test]
fn spoofed_segments_and_ack_floods_do_not_move_or_pin_flows() {
    run_locked("scripts/tests/lab-tcp-attacks.sh", &[]);
}

/// The AWS resource model through the stock AWS CLI: seed 004's rule groups and policy
/// created, associated and obeyed by real traffic; a stale update token refused; the stream
/// exception policy switched DROP -> REJECT with update-firewall-policy, reported IN_SYNC by
/// describe-firewall, and a flushed session reset at once; a domain-list group refused.
#[test]
fn aws_policy_from_the_cli_governs_real_traffic() {
    run_locked("scripts/tests/lab-aws-policy.sh", &[]);
}
