//! Generates `sys.rs` with bindgen against the system DPDK (pkg-config `libdpdk`), compiles the C shim
//! for DPDK's static inlines, and emits the link flags.
//!
//! The raw `pkg-config --cflags` tokens are passed through unchanged to both clang (bindgen) and the C
//! compiler: DPDK's headers need `-include rte_config.h` and `-march=corei7` (SSE4.2 intrinsics), which
//! the `pkg-config` crate would drop. The shim is compiled before the DPDK link flags are printed so it
//! precedes the DPDK libraries on the link line.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// DPDK LTS release the bindings are written against.
const DPDK_SERIES: &str = "22.11";

fn pkg_config(args: &[&str]) -> String {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("libdpdk")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run pkg-config (install pkg-config and libdpdk-dev): {e}")
        });
    if !out.status.success() {
        panic!(
            "pkg-config {args:?} libdpdk failed (is libdpdk-dev {DPDK_SERIES} installed?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("pkg-config output is not UTF-8")
}

fn main() {
    for var in [
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for file in ["build.rs", "csrc/wrapper.h", "csrc/shim.c"] {
        println!("cargo:rerun-if-changed={file}");
    }

    let version = pkg_config(&["--modversion"]);
    if !version.trim().starts_with(DPDK_SERIES) {
        println!(
            "cargo:warning=dpdk-bindings targets DPDK {DPDK_SERIES}, found {}",
            version.trim()
        );
    }
    let cflags_raw = pkg_config(&["--cflags"]);
    let cflags: Vec<&str> = cflags_raw.split_whitespace().collect();

    // 1. The shim, compiled with exactly DPDK's flags.
    let mut shim = cc::Build::new();
    shim.file("csrc/shim.c").include("csrc").opt_level(2);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("fgshim");

    // 2. Bindings. A tight allowlist keeps the output ~small and the build quick.
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let bindings = bindgen::Builder::default()
        .header("csrc/wrapper.h")
        .clang_args(cflags.iter().copied())
        .clang_arg("-Icsrc")
        // RTE_ETH_RSS_* and friends are built with RTE_BIT64(), which bindgen only evaluates this way.
        .clang_macro_fallback()
        // Its scratch files (a precompiled header, a probe .c) belong in OUT_DIR, not the source tree.
        .clang_macro_fallback_build_dir(&out)
        .allowlist_function("fg_.*")
        .allowlist_function("rte_eal_(init|cleanup|remote_launch|wait_lcore|get_lcore_state)")
        .allowlist_function("rte_(get_main_lcore|get_next_lcore|lcore_count|lcore_is_enabled)")
        .allowlist_function("rte_(lcore_to_socket_id|get_tsc_hz|strerror|version)")
        .allowlist_function("rte_pktmbuf_(pool_create|free_bulk)")
        .allowlist_function("rte_mempool_(free|avail_count|in_use_count)")
        .allowlist_function(
            "rte_eth_(dev_(configure|info_get|start|stop|close|socket_id|count_avail|get_port_by_name|adjust_nb_rx_tx_desc|is_valid_port)\
             |rx_queue_setup|tx_queue_setup|stats_get|stats_reset|promiscuous_enable|macaddr_get|link_get_nowait)",
        )
        .allowlist_type("rte_mbuf|rte_mempool|rte_eth_conf|rte_eth_dev_info|rte_eth_stats|rte_eth_link|rte_ether_addr")
        .allowlist_var("RTE_ETH_RSS_(IP|TCP|UDP)")
        .allowlist_var("RTE_ETH_(LINK_UP|RSS_HASH_KEY_LEN_MAX)")
        .allowlist_var("RTE_(MAX_ETHPORTS|MAX_LCORE|PKTMBUF_HEADROOM|MBUF_DEFAULT_BUF_SIZE|CACHE_LINE_SIZE)")
        .allowlist_var("SOCKET_ID_ANY|LCORE_ID_ANY")
        .rustified_enum("rte_eth_rx_mq_mode|rte_eth_tx_mq_mode|rte_lcore_state_t")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .wrap_unsafe_ops(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on csrc/wrapper.h");

    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("cannot write bindings.rs");

    // 3. Link flags, after the shim. Bus/driver libraries are plugins that EAL loads itself; we only
    //    call core `rte_*` APIs, so `--libs` is enough.
    for token in pkg_config(&["--libs"]).split_whitespace() {
        if let Some(dir) = token.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = token.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        }
    }
    // Exposed to dependents' build scripts as DEP_DPDK_CFLAGS.
    println!("cargo:cflags={}", cflags.join(" "));
}
