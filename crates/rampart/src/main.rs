//! The `rampart` command: serve a config, run the zero-config proxy, check a config,
//! print the config schema and reference.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod audit_cli;
mod client;
mod waf_cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rampart_config::Config;
use rampart_proxy::Gateway;
use rampart_telemetry::Metrics;

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "A self-hosted security and resilience layer for web backends"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway from a config file.
    Serve {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Directory for Rampart's data (overrides `data_dir`).
        #[arg(long, env = "RAMPART_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Worker threads (default: number of cores).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Zero-config mode: one listener in front of one upstream.
    Proxy {
        /// Address to listen on, such as 127.0.0.1:8080.
        #[arg(long)]
        from: String,
        /// Upstream URL, such as http://127.0.0.1:3000 (or builtin:echo).
        #[arg(long)]
        to: String,
        /// Admin listener address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
        /// Worker threads (default: number of cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Access log: stdout, off, or a file path.
        #[arg(long, default_value = "stdout")]
        access_log: String,
        /// Directory for Rampart's data (store, tokens, keys, audit log).
        #[arg(long, env = "RAMPART_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Validate a config file; print every error with its location.
    Check {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Config file tooling.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage consumers through a running instance's admin API.
    Consumers {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::ConsumersCommand,
    },
    /// Manage consumers' API keys through the admin API.
    Keys {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::KeysCommand,
    },
    /// List and lift client bans through the admin API.
    Bans {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::BansCommand,
    },
    /// The tamper-evident audit log: verify, tail, export, repair, rotate the key.
    #[command(subcommand)]
    Audit(audit_cli::AuditCommand),
    /// The WAF engine: run a rule set's conformance tests.
    #[command(subcommand)]
    Waf(waf_cli::WafCommand),
    /// Admin API administration.
    Admin {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Admin tokens.
    #[command(subcommand)]
    Token(client::TokenCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the JSON Schema of the config file.
    Schema,
    /// Print the config reference (Markdown), as in docs/config.md.
    Reference,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match rampart_config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: ok ({} listeners, {} upstreams, {} routes)",
                    config.display(),
                    c.listeners.len(),
                    c.upstreams.len(),
                    c.routes.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Config(ConfigCommand::Schema) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&rampart_config::json_schema()).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Reference) => {
            print!("{}", rampart_config::reference::markdown());
            ExitCode::SUCCESS
        }
        Command::Consumers {
            connection,
            command,
        } => admin_call(client::consumers(&connection, command)),
        Command::Keys {
            connection,
            command,
        } => admin_call(client::keys(&connection, command)),
        Command::Bans {
            connection,
            command,
        } => admin_call(client::bans(&connection, command)),
        Command::Admin {
            connection,
            command:
                AdminCommand::Token(client::TokenCommand::Create {
                    name,
                    role,
                    offline: true,
                    database_url,
                }),
        } => admin_call(async {
            create_token_offline(&connection.data_dir, database_url.as_deref(), &name, &role)
                .await
                .map_err(|e| client::CliError(format!("{e:#}")))
        }),
        Command::Admin {
            connection,
            command: AdminCommand::Token(command),
        } => admin_call(client::tokens(&connection, command)),
        Command::Audit(command) => audit_cli::run(command),
        Command::Waf(command) => waf_cli::run(command),
        Command::Serve {
            config,
            data_dir,
            workers,
        } => run(
            workers,
            Source::File {
                path: config,
                data_dir,
            },
        ),
        Command::Proxy {
            from,
            to,
            admin,
            workers,
            access_log,
            data_dir,
        } => run(
            workers,
            Source::Inline(proxy_config(&from, &to, &admin, &access_log, &data_dir)),
        ),
    }
}

/// Runs one admin CLI call on a small runtime; prints its error and exits 1 on failure.
fn admin_call(call: impl std::future::Future<Output = Result<(), client::CliError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(call) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `rampart admin token create --offline`: creates an admin token directly in the store
/// (for when no admin token works any more), audited in the same log the gateway
/// writes, and prints its secret.
async fn create_token_offline(
    data_dir: &Path,
    database_url: Option<&str>,
    name: &str,
    role: &str,
) -> anyhow::Result<()> {
    use rampart_store::{AdminTokenStore, AuditSink};
    let role = rampart_store::Role::parse(role)
        .ok_or_else(|| anyhow::anyhow!("unknown role {role:?}: admin, operator or auditor"))?;
    let store = match database_url {
        Some(url) => rampart_store::Store::open_postgres(url)
            .await
            .context("cannot open the Postgres store")?,
        None => {
            // Never a new, empty store in the wrong place.
            anyhow::ensure!(
                data_dir.join("audit").is_dir(),
                "{} is not a Rampart data dir (no audit log in it): give --data-dir, or --database-url for a shared store",
                data_dir.display()
            );
            rampart_store::Store::open_sqlite(data_dir)
                .await
                .with_context(|| format!("cannot open the store in {}", data_dir.display()))?
        }
    };
    let dir = data_dir.join("audit");
    let log: Arc<dyn rampart_audit::Ledger> = match store.backend() {
        rampart_store::Backend::Postgres => {
            Arc::new(rampart_audit::SharedAuditLog::open(store.clone(), &dir, Vec::new()).await?)
        }
        rampart_store::Backend::Sqlite => Arc::new(rampart_audit::AuditLog::open(
            rampart_audit::AuditLogSettings::new(dir),
        )?),
    };
    let trail = rampart_audit::AuditTrail {
        log,
        index: Arc::new(store.clone()),
        syslog: None,
    };
    let (token, secret) = store.create_token(name, role).await?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let event = rampart_store::AuditEvent {
        time: rampart_store::now_ms(),
        actor: format!("offline:{operator}"),
        action: "admin_token.create".into(),
        resource: format!("admin-token-name:{name}"),
        outcome: "success".into(),
        summary: serde_json::json!({ "after": { "token_id": token.id, "role": token.role } }),
        request_id: None,
        source_ip: None,
    };
    if let Err(e) = trail.record(&event).await {
        // No token without its audit entry.
        let undone = match store.revoke_token(&token.id).await {
            Ok(_) => "the token was revoked".to_string(),
            Err(revoke) => format!("revoking token {} failed too ({revoke})", token.id),
        };
        return Err(e).context(format!(
            "the token's audit entry could not be written; {undone}"
        ));
    }
    println!(
        "created admin token {} ({}, role {})",
        token.id,
        token.name,
        token.role.as_str()
    );
    println!("\nsecret (shown once): {secret}");
    Ok(())
}

/// Where the config comes from.
enum Source {
    File {
        path: PathBuf,
        data_dir: Option<PathBuf>,
    },
    Inline(String),
}

/// The config `rampart proxy` runs, written in the config language so it goes
/// through the same compile step as a file.
fn proxy_config(from: &str, to: &str, admin: &str, access_log: &str, data_dir: &Path) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        "data_dir = {data}\nadmin = {{ listen = {admin} }}\nlog = {{ access_log = {log} }}\n\
         [[listeners]]\nname = \"proxy\"\naddress = {from}\n\
         [upstreams.upstream]\ntargets = [{to}]\n\
         [[routes]]\nname = \"proxy\"\nupstream = \"upstream\"\n",
        data = quote(&data_dir.to_string_lossy()),
        admin = quote(admin),
        log = quote(access_log),
        from = quote(from),
        to = quote(to),
    )
}

fn run(workers: Option<usize>, source: Source) -> ExitCode {
    rampart_telemetry::init_logging();
    // One worker runs on a current-thread scheduler: no work-stealing overhead.
    let mut builder = if workers == Some(1) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().thread_name("rampart-worker");
    if let Some(n) = workers.filter(|n| *n > 1) {
        builder.worker_threads(n);
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(source: &Source) -> Result<Config, rampart_config::ConfigErrors> {
    match source {
        Source::File { path, data_dir } => {
            let mut config = rampart_config::load(path)?;
            if let Some(dir) = data_dir {
                config.data_dir = dir.clone();
            }
            Ok(config)
        }
        Source::Inline(text) => rampart_config::compile_str(text, Path::new(".")),
    }
}

/// Opens the store: Postgres when a URL is configured (or `RAMPART_DATABASE_URL` is
/// set), else SQLite in the data dir.
async fn open_store(config: &Config) -> anyhow::Result<rampart_store::Store> {
    let url = std::env::var("RAMPART_DATABASE_URL")
        .ok()
        .or_else(|| config.database_url.clone());
    match url {
        Some(url) => rampart_store::Store::open_postgres(&url)
            .await
            .context("cannot open the Postgres store"),
        None => rampart_store::Store::open_sqlite(&config.data_dir)
            .await
            .with_context(|| {
                format!(
                    "cannot open the SQLite store in {}",
                    config.data_dir.display()
                )
            }),
    }
}

/// Shared ephemeral state: Redis when configured (or `RAMPART_REDIS_URL` is set), else in-process.
async fn open_shared_state(config: &Config) -> anyhow::Result<Arc<dyn rampart_store::SharedState>> {
    let url = std::env::var("RAMPART_REDIS_URL")
        .ok()
        .or_else(|| config.redis_url.clone());
    Ok(match url {
        Some(url) => {
            let state = rampart_store::RedisState::connect(&url, &config.redis_key_prefix)
                .await
                .context("cannot connect to Redis")?;
            tracing::info!("shared state in Redis");
            state
        }
        None => Arc::new(rampart_store::LocalState::default()),
    })
}

async fn serve(source: Source) -> anyhow::Result<()> {
    // SIGHUP means "reload" from the start: its default action would end the process
    // if one arrived before the config watcher runs.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let config = load(&source).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data dir {}", config.data_dir.display()))?;
    let store = open_store(&config).await?;
    tracing::info!(backend = ?store.backend(), "store open");
    if let Some(path) = rampart_admin::bootstrap_token(&store, &config.data_dir).await? {
        tracing::info!(file = %path.display(), "no admin token existed: wrote a bootstrap admin token (mode 0600)");
    }
    let shared = open_shared_state(&config).await?;
    let admin_address = config.admin_listen;
    let metrics = Arc::new(Metrics::new());
    let assertion_key = rampart_crypto::SigningKey::load_or_create(
        &config.data_dir.join("assertion-signing-key.p8"),
    )?;
    let audit_log = open_audit_log(&config, &store).await?;
    if let rampart_audit::Health::Corrupt { index, reason } = audit_log.health() {
        tracing::error!(index, "the audit log is corrupt ({reason}): audited actions fail until an operator runs `rampart audit verify` and `rampart audit repair`");
    }
    rampart_audit::publish_every(&audit_log, config.audit.checkpoint_interval);
    let audit_trail: Arc<dyn rampart_store::AuditSink> = Arc::new(rampart_audit::AuditTrail {
        log: Arc::clone(&audit_log),
        index: Arc::new(store.clone()),
        syslog: config
            .audit
            .syslog
            .as_ref()
            .map(|s| rampart_audit::SyslogForwarder::start(s.address.clone(), s.tcp)),
    });
    let guards = Arc::new(
        rampart_guard::Guards::new(store.clone(), Arc::clone(&shared), Arc::clone(&metrics))?
            .with_assertion_key(Arc::new(assertion_key))
            .with_audit(Arc::clone(&audit_trail)),
    );
    let assertion_jwks = guards.assertion_jwks();
    let gateway = Arc::new(Gateway::start_with(config, metrics, Arc::clone(&guards) as _).await?);
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_state = Arc::new(
        rampart_admin::AdminState::new(Arc::clone(&gateway), store, shared)
            .with_assertion_jwks(assertion_jwks)
            .with_audit_log(Arc::clone(&audit_log), audit_trail),
    );
    let (_, admin_task) = rampart_admin::bind(admin_address, admin_state, async {
        let _ = admin_stopped.await;
    })
    .await?;
    if let Source::File { path, .. } = &source {
        tokio::spawn(watch_config(
            path.clone(),
            source_data_dir(&source),
            Arc::clone(&gateway),
            hangup,
        ));
    }
    wait_for_shutdown_signal().await;
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    gateway.shutdown().await;
    if let Err(e) = guards.flush_usage().await {
        tracing::error!("quota counts of the last second could not be written: {e}");
    }
    if let Err(e) = audit_log.publish_checkpoint().await {
        tracing::error!("no final audit checkpoint: {e}");
    }
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    tracing::info!("stopped");
    Ok(())
}

/// The audit log: in the shared database when the store is Postgres (one log for every
/// instance), else segment files in the data dir.
async fn open_audit_log(
    config: &Config,
    store: &rampart_store::Store,
) -> anyhow::Result<Arc<dyn rampart_audit::Ledger>> {
    let dir = config.data_dir.join("audit");
    let sensitive = config.audit.sensitive_fields.clone();
    Ok(match store.backend() {
        rampart_store::Backend::Postgres => {
            Arc::new(rampart_audit::SharedAuditLog::open(store.clone(), &dir, sensitive).await?)
        }
        rampart_store::Backend::Sqlite => {
            let mut settings = rampart_audit::AuditLogSettings::new(dir);
            settings.sensitive_fields = sensitive;
            Arc::new(rampart_audit::AuditLog::open(settings)?)
        }
    })
}

fn source_data_dir(source: &Source) -> Option<PathBuf> {
    match source {
        Source::File { data_dir, .. } => data_dir.clone(),
        Source::Inline(_) => None,
    }
}

async fn wait_for_shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reloads on SIGHUP and when the file changes (checked every second). A config
/// that does not compile is refused with its errors logged; the old one keeps serving.
async fn watch_config(
    path: PathBuf,
    data_dir: Option<PathBuf>,
    gateway: Arc<Gateway>,
    mut hangup: Option<tokio::signal::unix::Signal>,
) {
    let mut stamp = file_stamp(&path);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        let reason = tokio::select! {
            _ = async { match hangup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => "SIGHUP",
            _ = ticker.tick() => {
                let now = file_stamp(&path);
                if now == stamp { continue; }
                stamp = now;
                "file changed"
            }
        };
        let source = Source::File {
            path: path.clone(),
            data_dir: data_dir.clone(),
        };
        match load(&source) {
            Ok(config) => match gateway.reload(config) {
                Ok(()) => tracing::info!(reason, "config reloaded"),
                Err(e) => {
                    gateway.reload_refused();
                    tracing::error!(
                        reason,
                        "config reload refused, the old config keeps serving: {e}"
                    );
                }
            },
            Err(e) => {
                gateway.reload_refused();
                tracing::error!(
                    reason,
                    "config reload refused, the old config keeps serving: {e}"
                );
            }
        }
    }
}

/// mimalloc: fewer cycles per allocation than the system allocator on the request path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
