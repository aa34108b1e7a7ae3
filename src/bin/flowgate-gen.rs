//! `flowgate-gen`: writes deterministic pcaps for benchmarks and floods (see
//! `dataplane::gen`): N distinct flows in 198.18.0.0/15 and 2001:2::/48.

use std::path::PathBuf;
use std::process::ExitCode;

use dataplane::gen::{Family, Generator, Kind, Size, Spec};

const USAGE: &str = "usage: flowgate-gen --out FILE [options]

Writes a pcap of deterministic traffic: N distinct flows, packet k belongs to flow k mod N.
Sources are spread over 198.18.0.0/15 (IPv4) and 2001:2::/64 (IPv6), servers are in
198.19.255.0/24 and 2001:2:0:1::/64. Same arguments, same bytes.

  --out FILE                    pcap to write (required)
  --flows N                     distinct flows (default 1; suffixes k and m: 10k, 1m)
  --packets P                   packets to write (default: one per flow)
  --kind syn|established|udp    TCP SYN (new flows), TCP ACK/PSH of established
                                connections, or UDP (default established)
  --family v4|v6|mixed          address family; mixed alternates per flow (default v4)
  --size 64|imix                64-byte frames (IPv6 TCP: 78) or IMIX 7:4:1 of
                                64/594/1518 bytes, FCS included (default 64)
  --seed S                      seed of addresses, ports and sequence numbers (default 1)
  --dst-port P                  destination port (default 80; udp: 5201)
  --help                        this text";

fn parse_count(s: &str) -> Option<u64> {
    let s = s.to_ascii_lowercase();
    let (digits, mul) = match s.as_bytes().last() {
        Some(b'k') => (&s[..s.len() - 1], 1_000),
        Some(b'm') => (&s[..s.len() - 1], 1_000_000),
        _ => (&s[..], 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mul)
}

fn parse_args(args: &[String]) -> Result<Option<(Spec, PathBuf)>, String> {
    let mut spec = Spec::default();
    let mut packets = None;
    let mut dst_port = None;
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--help" || a == "-h" {
            return Ok(None);
        }
        const FLAGS: [&str; 8] = [
            "--out",
            "--flows",
            "--packets",
            "--kind",
            "--family",
            "--size",
            "--seed",
            "--dst-port",
        ];
        if !FLAGS.contains(&a.as_str()) {
            return Err(format!("unknown argument '{a}'"));
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{a} needs a value"))?
            .as_str();
        let bad = || format!("{a}: invalid value '{v}'");
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(v)),
            "--flows" => {
                let n = parse_count(v).ok_or_else(bad)?;
                spec.flows = u32::try_from(n).map_err(|_| bad())?;
            }
            "--packets" => packets = Some(parse_count(v).ok_or_else(bad)?),
            "--kind" => {
                spec.kind = match v {
                    "syn" => Kind::Syn,
                    "established" => Kind::Established,
                    "udp" => Kind::Udp,
                    _ => return Err(bad()),
                }
            }
            "--family" => {
                spec.family = match v {
                    "v4" => Family::V4,
                    "v6" => Family::V6,
                    "mixed" => Family::Mixed,
                    _ => return Err(bad()),
                }
            }
            "--size" => {
                spec.size = match v {
                    "64" => Size::Min,
                    "imix" => Size::Imix,
                    _ => return Err(bad()),
                }
            }
            "--seed" => spec.seed = v.parse().map_err(|_| bad())?,
            "--dst-port" => dst_port = Some(v.parse().map_err(|_| bad())?),
            _ => return Err(format!("unknown argument '{a}'")),
        }
    }
    let out = out.ok_or("--out FILE is required")?;
    spec.packets = packets.unwrap_or(u64::from(spec.flows));
    spec.dst_port = dst_port.unwrap_or(if spec.kind == Kind::Udp { 5201 } else { 80 });
    Ok(Some((spec, out)))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (spec, out) = match parse_args(&args) {
        Ok(Some(x)) => x,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("flowgate-gen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = Generator::new(spec).and_then(|g| g.write_pcap(&out));
    match result {
        Ok(bytes) => {
            eprintln!(
                "flowgate-gen: wrote {} packets ({} flows, {bytes} bytes of frames) to {}",
                spec.packets,
                spec.flows,
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flowgate-gen: {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}
