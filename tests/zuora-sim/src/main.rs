//! `zuora-sim [--port N] [--config FILE.json]`: runs the simulator until interrupted and
//! prints its URL and OAuth client credentials (test values, not secrets).

use std::process::ExitCode;

use zuora_sim::{SimConfig, Simulator};

/// mimalloc instead of the system allocator: a run allocates many small, short-lived values
/// from several threads (request bodies, Arrow arrays), where glibc's malloc spent a third of
/// the CPU time in `malloc`/`free` (perf, `docs/performance.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let mut port = 0u16;
    let mut config = SimConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(value)) => match value.parse() {
                Ok(p) => port = p,
                Err(_) => return usage(&format!("--port takes a number, not `{value}`")),
            },
            ("--config", Some(path)) => match std::fs::read_to_string(&path).map(|t| serde_json::from_str(&t)) {
                Ok(Ok(parsed)) => config = parsed,
                Ok(Err(e)) => return usage(&format!("{path}: {e}")),
                Err(e) => return usage(&format!("{path}: {e}")),
            },
            _ => return usage(&format!("unknown argument `{arg}`")),
        }
    }
    let (client_id, client_secret) = (config.client_id.clone(), config.client_secret.clone());
    let simulator = match Simulator::start(config, port).await {
        Ok(simulator) => simulator,
        Err(e) => {
            eprintln!("zuora-sim: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("zuora-sim listening on {}", simulator.url());
    println!("client_id={client_id} client_secret={client_secret}");
    let revenue = zuora_sim::revenue::RevenueConfig::default();
    println!(
        "revenue (same address): username={} password={} role={:?} clientname={} client_id={} client_secret={}",
        revenue.username, revenue.password, revenue.role, revenue.clientname, revenue.client_id, revenue.client_secret
    );
    if tokio::signal::ctrl_c().await.is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("zuora-sim: {problem}\nusage: zuora-sim [--port N] [--config FILE.json]");
    ExitCode::from(2)
}
