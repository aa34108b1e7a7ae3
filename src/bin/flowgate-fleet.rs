//! `flowgate-fleet --inventory FILE`: one AWS-compatible endpoint over the appliances of a
//! firewall's zones (see the README's "Several zones: the fleet").

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "One AWS-compatible endpoint over several Flowgate appliances (one per zone)"
)]
struct Args {
    /// The inventory: the firewall, the fleet's listener and keys, one [[zone]] per appliance.
    #[arg(long, short = 'i', env = "FLOWGATE_FLEET_INVENTORY")]
    inventory: PathBuf,
    /// Validate the inventory (and create the self-signed certificate) and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = if args.check {
        fleet::inventory::Inventory::load(&args.inventory)
            .map_err(|e| e.to_string())
            .map(|inv| {
                println!(
                    "{}: {} zones, ok",
                    args.inventory.display(),
                    inv.zones.len()
                )
            })
    } else {
        fleet::run(&args.inventory)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowgate-fleet: {e}");
            ExitCode::FAILURE
        }
    }
}
