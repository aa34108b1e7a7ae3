//! The `flowgate-fleet` harness shared by tests/fleet_e2e.rs and tests/fleet_policy.rs:
//! start the binary on an inventory, reach it over HTTPS trusting only its self-signed
//! certificate, drive it with the stock AWS CLI.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::repo;

pub fn venv() -> PathBuf {
    let v = std::env::var_os("FLOWGATE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    assert!(
        v.join("bin/aws").is_file(),
        "no AWS CLI venv at {}: run scripts/test.sh",
        v.display()
    );
    v
}

pub fn fleet_bin() -> PathBuf {
    std::env::var_os("FLOWGATE_FLEET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_flowgate-fleet")))
}

/// A running `flowgate-fleet`; killed on drop.
pub struct FleetProc {
    pub child: Child,
    pub endpoint: String,
    pub ca: PathBuf,
    pub log: PathBuf,
    pub home: PathBuf,
    pub key: String,
    pub secret: String,
    pub region: String,
    pub arn: String,
}

impl FleetProc {
    /// Writes `inventory` to `dir/fleet.toml`, starts the fleet, waits for HTTPS `/healthz`.
    /// The inventory's state directory must be `dir/state`; `key`/`secret`/`region`/`arn`
    /// are what the AWS CLI calls are made with.
    pub fn start(dir: &Path, inventory: &str, port: u16, who: [&str; 4]) -> FleetProc {
        FleetProc::start_trusting(dir, inventory, port, who, dir.join("state/tls/ca.pem"))
    }

    /// [`FleetProc::start`] for a fleet whose certificate is signed by `ca` (an inventory
    /// with `[fleet.tls]` files) rather than the one it generates in its state directory.
    pub fn start_trusting(
        dir: &Path,
        inventory: &str,
        port: u16,
        who: [&str; 4],
        ca: PathBuf,
    ) -> FleetProc {
        let path = dir.join("fleet.toml");
        std::fs::write(&path, inventory).unwrap();
        let log = dir.join("fleet.out");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(fleet_bin())
            .arg("--inventory")
            .arg(&path)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn flowgate-fleet");
        let mut f = FleetProc {
            child,
            endpoint: format!("https://127.0.0.1:{port}"),
            ca,
            log,
            home: dir.to_path_buf(),
            key: who[0].into(),
            secret: who[1].into(),
            region: who[2].into(),
            arn: who[3].into(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = f.child.try_wait() {
                panic!("flowgate-fleet exited ({st}):\n{}", f.output());
            }
            if f.ca.is_file() && f.get("/healthz").is_some_and(|(s, _)| s == 200) {
                return f;
            }
            assert!(
                Instant::now() < deadline,
                "fleet not ready:\n{}",
                f.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An unauthenticated HTTPS GET that trusts only the fleet's certificate.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let pem = std::fs::read(&self.ca).ok()?;
        let client = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).ok()?)
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?;
        let r = client.get(format!("{}{path}", self.endpoint)).send().ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().ok()?))
    }

    /// `aws network-firewall ARGS` against the fleet, one attempt (no retries).
    pub fn aws(&self, args: &[&str]) -> AwsOutcome {
        let out = Command::new(venv().join("bin/aws"))
            .arg("network-firewall")
            .args(args)
            .args(["--endpoint-url", &self.endpoint, "--output", "json"])
            .arg("--ca-bundle")
            .arg(&self.ca)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("AWS_ACCESS_KEY_ID", &self.key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_DEFAULT_REGION", &self.region)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_PAGER", "")
            .output()
            .expect("run aws");
        AwsOutcome {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn aws_ok(&self, args: &[&str]) -> Value {
        let o = self.aws(args);
        assert!(
            o.ok,
            "aws {args:?} failed:\n{}\n--- fleet ---\n{}",
            o.stderr,
            self.output()
        );
        if o.stdout.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
    }

    /// `describe-firewall` until `cond` holds (deadline 30 s); returns the last answer.
    pub fn wait_firewall(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.aws_ok(&["describe-firewall", "--firewall-arn", &self.arn]);
            if cond(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v:#}\n--- fleet ---\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for FleetProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct AwsOutcome {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl AwsOutcome {
    pub fn assert_error(&self, code: &str, operation: &str) {
        assert!(!self.ok, "should fail with {code}:\n{}", self.stdout);
        let want = format!("An error occurred ({code}) when calling the {operation} operation");
        assert!(
            self.stderr.contains(&want),
            "expected `{want}`, got:\n{}",
            self.stderr
        );
    }
}
