//! Crash-safe operation history under `<state_dir>/operations/`.
//!
//! * `<id>.json` — the operation record, replaced atomically (write a temp file, fsync it,
//!   rename over the old one, fsync the directory): a reader sees the old or the new record,
//!   never a torn one.
//! * `<id>.flows` — the results, append-only: a magic header, then fixed-size binary records
//!   each ending in a checksum of its bytes. Results are appended while the operation runs;
//!   after a kill -9 the valid prefix is kept and a torn tail is cut off at load.
//!
//! One writer thread does all the I/O in submission order, so the collector thread that
//! aggregates results never waits on a disk, and "results fsynced, then record says
//! COMPLETED" holds because the jobs run in that order.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use dataplane::flow::FlowState;
use dataplane::packet::Verdict;

use super::model::{FlowResult, Operation};
use crate::clock::Clock;
use crate::record_batch::RecordBatch;

const MAGIC: &[u8; 8] = b"FGFLOWS1";
/// Encoded size of one [`FlowResult`] including its trailing checksum.
pub const RECORD_LEN: usize = 116;
const BODY_LEN: usize = RECORD_LEN - 8;

enum Job {
    Record(String, Vec<u8>),
    Append(String, Vec<FlowResult>),
    /// The workers' records as the collector got them: converted here, off its thread.
    /// The batch is shared (a flush's is also on its way to the flow log).
    AppendRecords(String, RecordBatch, Clock),
    /// Flush and fsync the results file, then close it.
    Seal(String),
    Remove(String),
    Barrier(Sender<()>),
}

pub struct Store {
    dir: PathBuf,
    tx: Mutex<Option<Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    errors: Arc<AtomicU64>,
}

/// What [`Store::load`] found on disk.
pub struct Loaded {
    pub operations: Vec<Operation>,
    /// Files that could not be read and were skipped, with why.
    pub skipped: Vec<String>,
}

impl Store {
    pub fn open(dir: PathBuf) -> io::Result<Store> {
        fs::create_dir_all(&dir)?;
        let (tx, rx) = mpsc::channel();
        let errors = Arc::new(AtomicU64::new(0));
        let writer = {
            let dir = dir.clone();
            let errors = Arc::clone(&errors);
            std::thread::Builder::new()
                .name("fg-ops-history".into())
                .spawn(move || {
                    crate::background::enter();
                    run_writer(&dir, rx, &errors)
                })?
        };
        Ok(Store {
            dir,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            errors,
        })
    }

    /// Write failures so far (each is also reported on stderr).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn submit(&self, job: Job) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = tx.as_ref() {
            if tx.send(job).is_err() {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Persists the operation record (atomic replace).
    pub fn save(&self, op: &Operation) {
        match serde_json::to_vec_pretty(op) {
            Ok(bytes) => self.submit(Job::Record(op.id.clone(), bytes)),
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Appends the workers' records; they are converted to results on the writer thread.
    pub fn append_records(&self, id: &str, records: RecordBatch, clock: Clock) {
        if !records.is_empty() {
            self.submit(Job::AppendRecords(id.to_string(), records, clock));
        }
    }

    pub fn seal(&self, id: &str) {
        self.submit(Job::Seal(id.to_string()));
    }

    pub fn remove(&self, id: &str) {
        self.submit(Job::Remove(id.to_string()));
    }

    /// Waits until every job submitted so far is on disk.
    pub fn barrier(&self) {
        let (tx, rx) = mpsc::channel();
        self.submit(Job::Barrier(tx));
        let _ = rx.recv();
    }

    /// Reads every operation record, deleting leftover temp files and result files whose
    /// record is gone.
    pub fn load(&self) -> io::Result<Loaded> {
        let mut operations = Vec::new();
        let mut skipped = Vec::new();
        let mut flows = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
            } else if let Some(id) = name.strip_suffix(".flows") {
                flows.push(id.to_string());
            } else if name.ends_with(".json") {
                match fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        serde_json::from_slice::<Operation>(&b).map_err(|e| e.to_string())
                    })
                    .and_then(|op| named_by_its_id(op, &name))
                {
                    Ok(op) => operations.push(op),
                    Err(e) => skipped.push(format!("{}: {e}", path.display())),
                }
            }
        }
        for id in flows {
            if !operations.iter().any(|o| o.id == id) {
                let _ = fs::remove_file(self.flows_path(&id));
            }
        }
        Ok(Loaded {
            operations,
            skipped,
        })
    }

    fn flows_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.flows"))
    }

    /// Reads the valid records of `id`'s results file; cuts a torn or corrupt tail off the
    /// file when `repair` is set. A missing file reads as no results.
    pub fn read_results(&self, id: &str, repair: bool) -> io::Result<Vec<FlowResult>> {
        if !super::is_operation_id(id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("'{id}' is not an operation id"),
            ));
        }
        let path = self.flows_path(id);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => f.read_to_end(&mut bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let (results, valid_len) = decode_file(&bytes);
        if repair && valid_len != bytes.len() {
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(valid_len as u64)?;
            f.sync_all()?;
        }
        Ok(results)
    }
}

/// Keeps a loaded record only if its id is a valid operation id and names the file it
/// was read from: the id becomes a file name (`<id>.flows`, `<id>.json`) when the record
/// is repaired, rewritten or purged, so a planted `../../victim` must never get that far.
fn named_by_its_id(op: Operation, file_name: &str) -> Result<Operation, String> {
    if !super::is_operation_id(&op.id) {
        return Err(format!(
            "id {:?} is not a valid operation id; record ignored",
            op.id.chars().take(80).collect::<String>()
        ));
    }
    if file_name.strip_suffix(".json") != Some(op.id.as_str()) {
        return Err(format!(
            "id {} does not match the file name; record ignored",
            op.id
        ));
    }
    Ok(op)
}

impl Drop for Store {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish the queue and exit.
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

fn run_writer(dir: &Path, rx: Receiver<Job>, errors: &AtomicU64) {
    let mut open: HashMap<String, BufWriter<File>> = HashMap::new();
    let fail = |what: &str, e: io::Error| {
        errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("flowgate: operation history: {what}: {e}");
    };
    while let Ok(job) = rx.recv() {
        let job = match job {
            Job::AppendRecords(id, records, clock) => Job::Append(
                id,
                records
                    .records()
                    .iter()
                    .map(|r| FlowResult::from_record(r, &clock))
                    .collect(),
            ),
            other => other,
        };
        match job {
            Job::Record(id, bytes) => {
                if let Err(e) = write_atomic(dir, &format!("{id}.json"), &bytes) {
                    fail(&format!("writing {id}.json"), e);
                }
            }
            Job::Append(id, results) => {
                let res = (|| -> io::Result<()> {
                    let w = match open.entry(id.clone()) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let f = OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(dir.join(format!("{id}.flows")))?;
                            let fresh = f.metadata()?.len() == 0;
                            let mut w = BufWriter::with_capacity(1 << 16, f);
                            if fresh {
                                w.write_all(MAGIC)?;
                            }
                            v.insert(w)
                        }
                    };
                    for r in &results {
                        w.write_all(&encode(r))?;
                    }
                    // Hand the bytes to the kernel now, so a kill -9 of the process (not of
                    // the machine) keeps what was appended.
                    w.flush()
                })();
                if let Err(e) = res {
                    fail(&format!("appending to {id}.flows"), e);
                }
            }
            Job::Seal(id) => {
                if let Some(mut w) = open.remove(&id) {
                    let res = w.flush().and_then(|_| w.get_ref().sync_all());
                    if let Err(e) = res {
                        fail(&format!("syncing {id}.flows"), e);
                    }
                }
            }
            Job::Remove(id) => {
                open.remove(&id);
                for ext in ["json", "flows"] {
                    match fs::remove_file(dir.join(format!("{id}.{ext}"))) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {
                            fail(&format!("removing {id}.{ext}"), e)
                        }
                        _ => {}
                    }
                }
            }
            Job::Barrier(done) => {
                let _ = done.send(());
            }
            Job::AppendRecords(..) => {} // converted to Append above
        }
    }
}

/// Temp file + fsync + rename + directory fsync: a crash leaves the old file or the new
/// one, never half of it.
/// The temporary file has a unique name (`.<name>.<random>.tmp`), so concurrent writers of
/// the same file never write through each other's temporary.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

/// FNV-1a, 64-bit: enough to tell a torn or scribbled record from a whole one.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn encode(r: &FlowResult) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        b[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&[r.protocol, r.state as u8, r.verdict as u8, 0]);
    put(&r.vlan.to_le_bytes());
    put(&r.worker.to_le_bytes());
    put(&r.src.to_le_bytes());
    put(&r.dst.to_le_bytes());
    put(&r.src_port.to_le_bytes());
    put(&r.dst_port.to_le_bytes());
    put(&r.sid.to_le_bytes());
    put(&r.epoch.to_le_bytes());
    put(&r.flow_id.to_le_bytes());
    put(&r.age_secs.to_le_bytes());
    put(&r.first_seen_ms.to_le_bytes());
    for v in r.pkts.iter().chain(r.bytes.iter()) {
        put(&v.to_le_bytes());
    }
    debug_assert_eq!(at, BODY_LEN);
    let sum = checksum(&b[..BODY_LEN]);
    b[BODY_LEN..].copy_from_slice(&sum.to_le_bytes());
    b
}

/// Decodes one record; `None` if its checksum or an enum value is wrong.
pub fn decode(b: &[u8]) -> Option<FlowResult> {
    if b.len() != RECORD_LEN {
        return None;
    }
    let (body, sum) = b.split_at(BODY_LEN);
    if checksum(body) != u64::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let mut at = 0usize;
    let mut take = move |n: usize| {
        let s = &body[at..at + n];
        at += n;
        s
    };
    let head = take(4);
    let (protocol, state, verdict) = (head[0], head[1], head[2]);
    let u16_ = |s: &[u8]| u16::from_le_bytes([s[0], s[1]]);
    let vlan = u16_(take(2));
    let worker = u16_(take(2));
    let src = u128::from_le_bytes(take(16).try_into().ok()?);
    let dst = u128::from_le_bytes(take(16).try_into().ok()?);
    let src_port = u16_(take(2));
    let dst_port = u16_(take(2));
    let sid = u32::from_le_bytes(take(4).try_into().ok()?);
    let epoch = u32::from_le_bytes(take(4).try_into().ok()?);
    let mut u64_ = || u64::from_le_bytes(take(8).try_into().unwrap_or([0; 8]));
    let flow_id = u64_();
    let age_secs = u64_();
    let first_seen_ms = u64_();
    let pkts = [u64_(), u64_()];
    let bytes = [u64_(), u64_()];
    Some(FlowResult {
        src,
        dst,
        src_port,
        dst_port,
        protocol,
        vlan,
        state: *FlowState::ALL.get(state as usize)?,
        verdict: (verdict <= 3).then(|| Verdict::from_u8(verdict))?,
        sid,
        epoch,
        worker,
        flow_id,
        age_secs,
        first_seen_ms,
        pkts,
        bytes,
    })
}

/// The valid records of a results file and the length of its valid prefix.
fn decode_file(bytes: &[u8]) -> (Vec<FlowResult>, usize) {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return (Vec::new(), 0);
    }
    let mut out = Vec::with_capacity((bytes.len() - MAGIC.len()) / RECORD_LEN);
    let mut valid = MAGIC.len();
    for chunk in bytes[MAGIC.len()..].chunks(RECORD_LEN) {
        match decode(chunk) {
            Some(r) => {
                out.push(r);
                valid += RECORD_LEN;
            }
            None => break,
        }
    }
    (out, valid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(i: u64) -> FlowResult {
        FlowResult {
            src: dataplane::packet::v4_to_addr(0xc612_0000 | i as u32),
            dst: u128::from(std::net::Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, i as u16)),
            src_port: 40000,
            dst_port: 443,
            protocol: 6,
            vlan: 7,
            state: FlowState::Established,
            verdict: Verdict::Reject,
            sid: 42,
            epoch: 3,
            worker: 1,
            flow_id: 0xabc_def0 + i,
            age_secs: 301,
            first_seen_ms: 1_700_000_000_000,
            pkts: [10, u64::MAX],
            bytes: [1000, 2000],
        }
    }

    #[test]
    fn records_round_trip_and_corruption_is_detected() {
        let r = sample(5);
        let mut b = encode(&r);
        assert_eq!(decode(&b), Some(r));
        b[20] ^= 1;
        assert_eq!(decode(&b), None);
        assert_eq!(decode(&b[..RECORD_LEN - 1]), None);
    }

    #[test]
    fn torn_tail_is_cut_at_the_last_whole_record() {
        let mut file = MAGIC.to_vec();
        for i in 0..3 {
            file.extend_from_slice(&encode(&sample(i)));
        }
        let whole = file.len();
        file.extend_from_slice(&encode(&sample(9))[..50]);
        let (rs, valid) = decode_file(&file);
        assert_eq!(rs.len(), 3);
        assert_eq!(valid, whole);
        assert_eq!(rs[2], sample(2));
        assert_eq!(decode_file(b"nonsense").0.len(), 0);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut file = MAGIC.to_vec();
            file.extend_from_slice(&b);
            let (rs, valid) = decode_file(&file);
            prop_assert_eq!(valid, MAGIC.len() + rs.len() * RECORD_LEN);
        }
    }
}
