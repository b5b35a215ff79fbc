//! orders-service: `orders-service` runs the service, `orders-service migrate` applies the
//! database migrations and exits. Configuration comes from the environment and `.env`.

use std::process::ExitCode;

use orders_service::config::Config;
use orders_service::db;
use orders_service::startup::Application;

fn main() -> ExitCode {
    // A missing .env is fine: the environment may hold everything.
    let _ = dotenvy::dotenv();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("orders-service: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match std::env::args().nth(1).as_deref() {
        Some("migrate") => match db::run_migrations(
            config
                .migration_database
                .as_ref()
                .unwrap_or(&config.database),
            config.database.user(),
        ) {
            Ok(applied) => {
                println!(
                    "applied {} migration(s): {}",
                    applied.len(),
                    applied.join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("orders-service: {e:#}");
                ExitCode::FAILURE
            }
        },
        None | Some("serve") => {
            let system = actix::System::new();
            let result = system.block_on(serve(config));
            // Exit here, with the System still alive: dropping it would close the Kafka
            // consumer again, which can block for tens of seconds when the broker is gone.
            // Everything durable (writes, offsets) is already done.
            let code = match result {
                Ok(()) => 0,
                Err(e) => {
                    log::error!("orders-service: {e:#}");
                    1
                }
            };
            std::process::exit(code)
        }
        Some(other) => {
            eprintln!(
                "orders-service: unknown command {other:?}; usage: orders-service [serve|migrate]"
            );
            ExitCode::from(2)
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Listen for signals before the (possibly long) start-up, so a SIGTERM while waiting for
    // the database, migrating or warming up is a clean exit 0 rather than the default kill.
    let shutdown = shutdown_signal()?;
    let app = Application::build(config)?;
    // The first lines on stdout: scripts and tests read the bound addresses from them; then
    // "orders-service ready" follows when ingestion runs.
    println!("orders-service listening on http://{}", app.addr());
    println!("orders-service admin on http://{}", app.admin_addr());
    app.run_until_stopped(shutdown).await
}

/// Registers SIGTERM and SIGINT handlers now; the future resolves on the first of them.
/// A second signal while the service stops exits at once (status 130): the operator's way
/// out of a stop that waits on something unreachable.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use anyhow::Context;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("Failed to listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("Failed to listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => log::info!("SIGTERM received"),
            _ = int.recv() => log::info!("SIGINT received"),
        }
        actix::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            log::warn!("second signal received: exiting now, without waiting for the ordered stop");
            std::process::exit(130);
        });
    })
}
