//! `flowgate`: the appliance. Loads and validates the config and policy, brings up the
//! EAL, the ports and one worker per configured lcore, then runs the management side
//! (HTTP APIs, metrics, logs, operations) until SIGINT/SIGTERM; SIGHUP reloads the policy.

mod lcore;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dataplane::flow::{ShardConfig, TimeoutsSecs};
use dataplane::fragments::FragConfig;
use dataplane::worker::engine::{EngineConfig, WorkerRings};
use dpdk_bindings::{Eal, Mempool, Port, PortConfig, MBUF_HEADROOM};
use mgmt::app::{App, AppParts};
use mgmt::clock::Clock;
use mgmt::config::{Config, FrameAction, FullAction, RejectRst};
use mgmt::control::{Control, WorkerLink};
use mgmt::policy_mgr::PolicyManager;
use mgmt::resources::ResourceManager;

const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("FLOWGATE_GIT_REV"),
    ", built against DPDK ",
    env!("FLOWGATE_DPDK_VERSION"),
    ")"
);

/// The command line.
#[derive(clap::Parser)]
#[command(name = "flowgate", version = VERSION, about = "Stateful L3/L4 firewall data plane on DPDK")]
struct Cli {
    /// The appliance configuration (TOML).
    #[arg(
        short,
        long,
        value_name = "FILE",
        required_unless_present = "completions"
    )]
    config: Option<PathBuf>,
    /// Validate the config and policy, then exit.
    #[arg(long)]
    check: bool,
    /// Print a shell completion script and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<clap_complete::Shell>,
}

fn main() -> ExitCode {
    use clap::{CommandFactory, Parser};
    let cli = Cli::parse();
    if let Some(shell) = cli.completions {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "flowgate",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let Some(config) = cli.config else {
        // clap requires --config unless --completions; kept as a plain usage error.
        eprintln!("flowgate: --config FILE is required");
        return ExitCode::from(2);
    };
    match run(&config, cli.check) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowgate: {e}");
            ExitCode::from(1)
        }
    }
}

fn timeouts(t: &mgmt::config::Timeouts) -> TimeoutsSecs {
    TimeoutsSecs {
        tcp_new: t.tcp_new,
        tcp_established: t.tcp_established,
        tcp_closed: t.tcp_closed,
        udp_new: t.udp_new,
        udp_established: t.udp_established,
        icmp_new: t.icmp_new,
        icmp_established: t.icmp_established,
        other_new: t.other_new,
        other_established: t.other_established,
    }
}

fn run(config_path: &std::path::Path, check_only: bool) -> Result<(), String> {
    let cfg = Config::load(config_path).map_err(|e| e.to_string())?;
    cfg.check_paths().map_err(|e| e.to_string())?;
    let workers_n = cfg.workers.lcores.len();
    // `--check` judges the files alone; a running appliance falls back on the last
    // validated policy (kept under the state directory) when they are invalid.
    let snapshot = cfg.appliance.state_dir.join("policy-last-validated.json");
    // The AWS resources (and, under policy.source = "api", the policy the API set) come
    // from the state directory; `--check` judges the files alone.
    let (resources, policy_file) = if check_only {
        (None, cfg.policy.file.clone())
    } else {
        let (r, f) = ResourceManager::open(&cfg).map_err(|e| format!("resources: {e}"))?;
        (Some(r), f)
    };
    let policy = PolicyManager::load(
        &policy_file,
        workers_n,
        (!check_only).then_some(snapshot.as_path()),
        cfg.policy.max_rules,
    )
    .map_err(|e| format!("policy refused: {e}"))?;
    if check_only {
        println!("config OK: {}", config_path.display());
        println!("policy OK: {}", policy.current().summary());
        return Ok(());
    }
    if cfg.mgmt.auth == Some(mgmt::config::AuthMode::None) {
        eprintln!(
            "flowgate: WARNING: mgmt.auth = \"none\": the management API on {} accepts unauthenticated requests (labs only)",
            cfg.mgmt.listen
        );
    }
    std::fs::create_dir_all(&cfg.appliance.state_dir).map_err(|e| {
        format!(
            "cannot create state_dir {}: {e}",
            cfg.appliance.state_dir.display()
        )
    })?;

    let argv = cfg.eal_argv();
    let prefix = argv
        .iter()
        .find_map(|a| a.strip_prefix("--file-prefix="))
        .map(str::to_string);
    let eal = Eal::init(&argv).map_err(|e| {
        // EAL made its runtime directory before it failed; the one of the prefix generated
        // for this process is nobody else's.
        if prefix.as_deref() == Some(mgmt::config::generated_file_prefix().as_str()) {
            remove_eal_runtime_dir(prefix.as_deref());
        }
        format!("EAL init failed ({}): {e}", argv.join(" "))
    })?;
    let resources = resources.ok_or("resources not opened")?;
    resources.after_reload(policy.last_error().is_none());
    let result = run_with_eal(&eal, cfg, policy, resources);
    drop(eal);
    remove_eal_runtime_dir(prefix.as_deref());
    result
}

/// Removes EAL's runtime directory of `prefix` (`/var/run/dpdk/<prefix>`), once EAL is
/// done with it.
fn remove_eal_runtime_dir(prefix: Option<&str>) {
    if let Some(p) = prefix {
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{p}"));
    }
}

fn run_with_eal(
    eal: &Eal,
    cfg: Config,
    policy: PolicyManager,
    resources: ResourceManager,
) -> Result<(), String> {
    let available = eal.worker_lcores();
    for l in &cfg.workers.lcores {
        if !available.contains(l) {
            return Err(format!(
                "{}: workers.lcores: lcore {l} is not an enabled worker lcore (EAL has {available:?}; main is {})",
                cfg.source.display(),
                eal.main_lcore()
            ));
        }
    }
    // One segment holds the largest frame of any pair: every frame is parsed and
    // forwarded whole (the parser reads one contiguous buffer).
    let data_room = cfg.max_frame_len().max(2048) + MBUF_HEADROOM;
    let pool = Arc::new(
        Mempool::new(eal, "fg_pkt", cfg.eal.mbufs, 256, data_room).map_err(|e| {
            format!(
                "mbuf pool of {} x {data_room} bytes failed: {e}",
                cfg.eal.mbufs
            )
        })?,
    );

    // Ports, in pair order: index = pair * 2 + side.
    let mut ports = Vec::new();
    let mut port_names = Vec::new();
    for (pi, pair) in cfg.port_pairs.iter().enumerate() {
        for name in [&pair.a, &pair.b] {
            let id = Port::by_name(eal, name).map_err(|e| {
                format!(
                    "port_pair[{pi}]: port '{name}' not found ({e}); is its --vdev in eal.args?"
                )
            })?;
            let pc = PortConfig {
                rx_queues: pair.queues,
                tx_queues: pair.queues,
                rx_desc: pair.rx_desc,
                tx_desc: pair.tx_desc,
                symmetric_rss: pair.queues > 1,
                promiscuous: pair.promiscuous,
                // 1500 is every driver's default: leave it to the driver then.
                mtu: (pair.mtu != 1500).then_some(pair.mtu),
            };
            let (port, info) = Port::start(eal, id, &pc, &pool)
                .map_err(|e| format!("port_pair[{pi}]: port '{name}' failed to start: {e}"))?;
            eprintln!(
                "flowgate: port {name}: driver {} queues {} rss {}",
                info.driver, pair.queues, info.rss_enabled
            );
            ports.push(port);
            port_names.push(name.clone());
        }
    }

    // (pair, queue) assignments, round-robin over the workers.
    let mut assignments: Vec<Vec<(usize, u16)>> = vec![Vec::new(); cfg.workers.lcores.len()];
    let mut k = 0;
    for (pi, pair) in cfg.port_pairs.iter().enumerate() {
        for q in 0..pair.queues {
            assignments[k % cfg.workers.lcores.len()].push((pi, q));
            k += 1;
        }
    }

    let ticks_per_sec = eal.tsc_hz();
    let clock = Clock::new(ticks_per_sec, dpdk_bindings::tsc);
    let stop = Arc::new(AtomicBool::new(false));
    let current = policy.current();
    let mut links = Vec::new();
    let mut handles = Vec::new();
    for (w, lcore) in cfg.workers.lcores.iter().enumerate() {
        let ft = &cfg.flow_table;
        let engine_cfg = EngineConfig {
            worker: w as u16,
            shard: ShardConfig {
                capacity: ft.capacity_per_worker,
                // The engine applies the policy's TcpIdleTimeoutSeconds over this.
                timeouts: timeouts(&ft.timeouts),
                emergency_timeouts: timeouts(&ft.emergency_timeouts),
                emergency_high_pct: ft.emergency_high_pct,
                emergency_low_pct: ft.emergency_low_pct,
                ticks_per_sec,
                tombstone_secs: cfg.dataplane.reject_tombstone_secs,
                // A fresh random key per worker and boot (see FlowHasher).
                hash_seeds: None,
            },
            vlan_zone: ft.vlan_zone,
            pass_malformed: cfg.dataplane.malformed_action == FrameAction::Pass,
            pass_non_ip: cfg.dataplane.non_ip_action == FrameAction::Pass,
            non_ip_pass_ethertypes: cfg.dataplane.non_ip_pass_ethertypes.clone(),
            fragments: FragConfig {
                capacity: cfg.dataplane.fragment_table_size,
                timeout_ticks: ticks_per_sec * u64::from(cfg.dataplane.fragment_timeout_ms) / 1000,
            },
            pass_untracked_when_full: ft.full_action == FullAction::PassUntracked,
            expiry_slots_per_poll: ft.expiry_slots_per_poll,
            scan_budget_ns: cfg.operations.scan_budget_ns,
            ticks_per_sec,
            tcp_liberal: cfg.dataplane.tcp_liberal,
            reject_rst: match cfg.dataplane.reject_rst {
                RejectRst::Sender => dataplane::worker::RejectRst::Sender,
                RejectRst::Both => dataplane::worker::RejectRst::Both,
            },
            rst_rate_per_sec: cfg.dataplane.reject_rsts_per_sec,
            rst_burst: cfg.dataplane.reject_rst_burst,
        };
        // The engine (and its flow table) is built on the worker's own lcore.
        let engine = lcore::EngineParts {
            cfg: engine_cfg,
            policy: Arc::clone(&current),
            rule_hits: PolicyManager::hit_buffer(&current),
        };
        let rings = Arc::new(WorkerRings::new(64, 16_384, 65_536));
        let mut queues = Vec::new();
        for &(pi, q) in &assignments[w] {
            let base = queues.len();
            for side in 0..2 {
                let port = &ports[pi * 2 + side];
                queues.push(lcore::PortQueue {
                    rx: port.rx_queue(q),
                    tx: port.tx_queue(q),
                    port: pi * 2 + side,
                    peer: base + (1 - side),
                });
            }
        }
        let worker = lcore::Worker {
            engine,
            queues,
            rings: Arc::clone(&rings),
            pool: Arc::clone(&pool),
            burst: cfg.workers.burst as usize,
        };
        let stop_w = Arc::clone(&stop);
        let h = dpdk_bindings::launch_on_lcore(eal, *lcore, move || worker.run(stop_w))
            .map_err(|e| format!("cannot launch worker {w} on lcore {lcore}: {e}"))?;
        handles.push(h);
        links.push(WorkerLink {
            index: w as u16,
            lcore: *lcore,
            rings,
        });
    }
    drop(current);

    let control = Arc::new(Control::new(links, Duration::from_secs(2)));
    let port_ids: Vec<(String, dpdk_bindings::PortId)> = port_names
        .iter()
        .cloned()
        .zip(ports.iter().map(|p| p.id()))
        .collect();
    let pool_m = Arc::clone(&pool);
    // Log and history writing are background work: on the management core the collector,
    // which drains the workers' rings (and so paces a capture or flush), goes first.
    mgmt::background::set_thread_setup(|| {
        if let Err(e) = dpdk_bindings::set_current_thread_nice(10) {
            eprintln!("flowgate: background thread keeps normal priority ({e})");
        }
    });
    mgmt::background::set_results_prefault(|spare| {
        // Best effort: without it the first large operation faults its pages in.
        let _ = dpdk_bindings::prefault(spare);
    });
    let app = App::new(AppParts {
        cfg: cfg.clone(),
        control: Arc::clone(&control),
        policy,
        resources,
        clock,
        ports: port_names.clone(),
        port_stats: Box::new(move || {
            port_ids
                .iter()
                .filter_map(|(n, id)| {
                    dpdk_bindings::port_stats(*id).map(|s| {
                        (
                            n.clone(),
                            [
                                s.ipackets,
                                s.opackets,
                                s.ibytes,
                                s.obytes,
                                s.imissed,
                                s.ierrors,
                                s.oerrors,
                                s.rx_nombuf,
                            ],
                        )
                    })
                })
                .collect()
        }),
        mempool: Box::new(move || (pool_m.in_use(), pool_m.capacity())),
    });
    let app = match app {
        Ok(a) => a,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            for h in handles {
                let _ = h.join();
            }
            return Err(e);
        }
    };
    let log_writer = app
        .spawn_log_writer()
        .map_err(|e| format!("cannot start the log writer: {e}"))?;
    let collector_stop = Arc::new(AtomicBool::new(false));
    let collector = control
        .spawn_collector(app.clone(), Arc::clone(&collector_stop))
        .map_err(|e| format!("cannot start collector: {e}"))?;

    // The HTTP threads share the management core(s): the CPUs the EAL left this thread on.
    let runtime = api_server::runtime::pinned(2, api_server::runtime::management_cores())
        .map_err(|e| format!("cannot start the management runtime: {e}"))?;
    // The listeners die with the management side (fault injection: /v1/debug/kill_mgmt).
    let listeners = mgmt::listeners::start(runtime.handle(), &cfg, &app, control.mgmt_dead_flag())?;
    eprintln!(
        "flowgate: {} workers on lcores {:?}; API on {}://{}; policy {}",
        cfg.workers.lcores.len(),
        cfg.workers.lcores,
        listeners.scheme,
        listeners.api.local_addr(),
        app.policy.current().summary()
    );

    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&term))
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .map_err(|e| format!("signal handler: {e}"))?;

    let mut listeners = Some(listeners);
    while !term.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if control.mgmt_dead() && listeners.is_some() {
            // The listeners stopped answering the moment the management side died; close
            // them now so clients are refused at once instead of queuing unanswered.
            // The workers are not touched.
            drop(listeners.take());
            eprintln!("flowgate: management is dead: API closed; workers keep forwarding");
        }
        if hup.swap(false, Ordering::Relaxed) {
            if control.mgmt_dead() {
                // Reloading is the management side's job; with it dead the workers keep
                // the last policy they were given.
                eprintln!("flowgate: SIGHUP ignored: management is dead, policy unchanged");
            } else {
                let _ = app.reload_policy("SIGHUP", None);
            }
        }
    }

    eprintln!("flowgate: shutting down");
    drop(listeners);
    stop.store(true, Ordering::Relaxed);
    let mut failed = Vec::new();
    for (w, h) in handles.into_iter().enumerate() {
        if let Err(e) = h.join() {
            failed.push(format!("worker {w}: {e}"));
        }
    }
    collector_stop.store(true, Ordering::Relaxed);
    // After kill_mgmt the collector is long gone and this join returns at once; the drain
    // below still runs (on this thread), so the flows the workers ended at shutdown reach
    // the logs even then.
    let _ = collector.join();
    control.drain_all(&*app);
    app.close_logs(log_writer);
    drop(ports);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("workers failed: {}", failed.join("; ")))
    }
}
