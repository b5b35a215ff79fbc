//! orders-service: `orders-service` runs the service, `orders-service migrate` applies the
//! database migrations and exits, `orders-service replay` replays dead letters,
//! `orders-service retention` deletes old dead letters.
//! Configuration comes from the environment and `.env`.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use orders_service::config::{self, Config, Settings};
use orders_service::db::{self, dead_letters::LetterFilter};
use orders_service::replay;
use orders_service::startup::Application;

/// Kafka → validated orders → PostgreSQL, with a cache, a JSON API and a web page.
/// Settings come from the environment and `.env` (the real environment wins), or from their
/// flags; the README's configuration table says more about each.
#[derive(Parser)]
#[command(name = "orders-service", version, after_help = config::other_variables_help())]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Apply the database migrations (as MIGRATION_DATABASE_URL's role) and exit.
    Migrate,
    /// Run dead letters through the current validation and write path again, at most
    /// --limit per run (one transaction, one run at a time); prints a summary.
    Replay(ReplayArgs),
    /// Delete dead letters received more than DEAD_LETTER_RETENTION_DAYS ago, as the role
    /// that owns the tables (MIGRATION_DATABASE_URL, else DATABASE_URL), in batches; prints
    /// what it deleted. Run it periodically (cron, a compose service); safe beside the service.
    Retention(RetentionArgs),
}

#[derive(Args)]
struct RetentionArgs {
    /// Count the dead letters that would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct ReplayArgs {
    /// Only dead letters with this reason (repeatable): malformed, too_large, schema, …
    #[arg(long = "reason", value_name = "REASON")]
    reasons: Vec<String>,
    /// Only dead letters received at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    since: Option<String>,
    /// Only dead letters received before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    until: Option<String>,
    /// Only the dead letters with these ids (repeatable).
    #[arg(long = "id", value_name = "N")]
    ids: Vec<i64>,
    /// Only dead letters of this order id.
    #[arg(long, value_name = "UID")]
    order_uid: Option<String>,
    /// Validate only: report what would happen, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Most dead letters this run replays (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = replay::DEFAULT_LETTERS_PER_RUN)]
    limit: usize,
    /// Continue after this dead-letter id (the cursor a previous run printed).
    #[arg(long, value_name = "ID")]
    after: Option<i64>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    // A missing .env is fine: the environment may hold everything. Loaded before the
    // command line is parsed, since that reads the settings from the environment.
    let _ = dotenvy::dotenv();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match config::setting_error(&e) {
            Some(e) => return configuration_error(e),
            // Usage errors (exit 2), --help and --version, in clap's words.
            None => e.exit(),
        },
    };
    let vars: Vec<(String, String)> = config::env_vars().collect();
    let config = match Config::new(
        cli.settings,
        vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ) {
        Ok(config) => config,
        Err(e) => return configuration_error(&e),
    };
    orders_service::logging::init(config.log_format);
    let code = run(cli.command.unwrap_or(Command::Serve), config);
    // The log is written by its own thread: what is still queued goes out before the exit.
    orders_service::logging::flush();
    code
}

fn run(command: Command, config: Config) -> ExitCode {
    match command {
        Command::Migrate => match db::run_migrations(
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
        Command::Replay(args) => match run_replay(&config, args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("orders-service: replay failed: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Retention(args) => match run_retention(&config, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("orders-service: retention failed: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve => {
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
            orders_service::logging::flush();
            std::process::exit(code)
        }
    }
}

/// A setting that cannot be taken: exit status 2, naming the variable and what it accepts.
fn configuration_error(e: &config::ConfigError) -> ExitCode {
    eprintln!("orders-service: configuration error: {e}");
    ExitCode::from(2)
}

/// `orders-service replay`: one connection as the runtime role, safe while the service runs
/// (a running instance reads a replayed order from the database on its next miss).
fn run_replay(config: &Config, args: ReplayArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    replay::check_ids(&args.ids).map_err(anyhow::Error::msg)?;
    let limits = replay::Limits::new(Some(args.limit), args.after).map_err(anyhow::Error::msg)?;
    let filter = LetterFilter {
        reasons: replay::known_reasons(args.reasons).map_err(anyhow::Error::msg)?,
        order_uid: args.order_uid,
        since: replay::parse_time("--since", args.since.as_deref()).map_err(anyhow::Error::msg)?,
        until: replay::parse_time("--until", args.until.as_deref()).map_err(anyhow::Error::msg)?,
        ids: args.ids,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("Failed to start a runtime")?;
    let summary = runtime.block_on(async {
        let mut conn = config
            .database
            .connect()
            .await
            .with_context(|| format!("Failed to connect to {}", config.database.shown()))?;
        replay::run(
            &mut conn,
            &filter,
            limits,
            config.ingest.max_payload_bytes,
            args.dry_run,
        )
        .await
        .map_err(anyhow::Error::from)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for letter in &summary.letters {
            println!(
                "dead letter {:>8}  {:<10} {}{}",
                letter.id,
                letter.result,
                letter.order_uid.as_deref().unwrap_or("-"),
                letter
                    .reason
                    .as_deref()
                    .map(|r| format!("  ({r})"))
                    .unwrap_or_default()
            );
        }
        println!("{}", replay::describe(&summary));
    }
    Ok(())
}

/// `orders-service retention`: one connection as the owner role (see [`db::retention`]).
fn run_retention(config: &Config, args: &RetentionArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let days = config.dead_letter_retention_days;
    if days == 0 {
        println!("DEAD_LETTER_RETENTION_DAYS=0: dead letters are kept for ever; nothing deleted");
        return Ok(());
    }
    let owner = config
        .migration_database
        .as_ref()
        .unwrap_or(&config.database);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("Failed to start a runtime")?;
    let cutoff = db::retention::cutoff(chrono::Utc::now(), days);
    let purged = runtime.block_on(async {
        let mut conn = owner
            .connect()
            .await
            .with_context(|| format!("Failed to connect to {}", owner.shown()))?;
        db::retention::purge(&mut conn, cutoff, db::retention::BATCH, args.dry_run)
            .await
            .map_err(anyhow::Error::from)
    })?;
    let cutoff = purged
        .cutoff
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if args.dry_run {
        println!(
            "retention (dry run): {} dead letters received before {cutoff} (DEAD_LETTER_RETENTION_DAYS={days}) would be deleted",
            purged.deleted
        );
    } else {
        println!(
            "retention: deleted {} dead letters received before {cutoff} (DEAD_LETTER_RETENTION_DAYS={days}) in {} batch(es) of at most {}",
            purged.deleted,
            purged.batches,
            db::retention::BATCH
        );
    }
    Ok(())
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
