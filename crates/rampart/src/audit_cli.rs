//! `rampart audit …`: offline tools over a data dir's audit log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

/// Audit log commands (run against the data dir; `repair` and `rotate-key` while
/// Rampart is stopped).
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the whole tree from the entries, check every stored checkpoint's
    /// signature and consistency; exit 1 naming the first bad index.
    Verify {
        /// Rampart's data dir.
        #[arg(long, env = "RAMPART_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Verify the shared log in this Postgres database instead of the data dir's.
        #[arg(long, env = "RAMPART_DATABASE_URL")]
        database_url: Option<String>,
        /// Trust these verifier keys instead of the published ones.
        #[arg(long = "key")]
        keys: Vec<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Print the last entries, one canonical JSON object per line with its index.
    Tail {
        /// Rampart's data dir.
        #[arg(long, env = "RAMPART_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Read the shared log in this Postgres database instead of the data dir's.
        #[arg(long, env = "RAMPART_DATABASE_URL")]
        database_url: Option<String>,
        /// How many.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: u64,
    },
    /// Write every entry to standard output for a SIEM.
    Export {
        /// Rampart's data dir.
        #[arg(long, env = "RAMPART_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Read the shared log in this Postgres database instead of the data dir's.
        #[arg(long, env = "RAMPART_DATABASE_URL")]
        database_url: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// First index to export.
        #[arg(long, default_value_t = 0)]
        start: u64,
    },
    /// Cut an incomplete or corrupt tail that no signed checkpoint covers (never
    /// anything a checkpoint covers).
    Repair {
        /// Rampart's data dir.
        #[arg(long, env = "RAMPART_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Start signing checkpoints with a new key; earlier keys stay published.
    RotateKey {
        /// Rampart's data dir.
        #[arg(long, env = "RAMPART_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
}

/// Export formats.
#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// `{"index":…,"entry":…}` per line.
    Jsonl,
    /// ArcSight Common Event Format.
    Cef,
}

fn audit_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("audit")
}

/// Runs one audit command.
pub fn run(command: AuditCommand) -> ExitCode {
    match command {
        AuditCommand::Verify {
            data_dir,
            database_url,
            keys,
            quiet,
        } => verify(&audit_dir(&data_dir), database_url.as_deref(), &keys, quiet),
        AuditCommand::Tail {
            data_dir,
            database_url,
            lines,
        } => {
            let mut last: std::collections::VecDeque<(u64, Vec<u8>)> = Default::default();
            let read = for_each_entry(&data_dir, database_url.as_deref(), 0, |index, bytes| {
                if last.len() as u64 == lines {
                    last.pop_front();
                }
                if lines > 0 {
                    last.push_back((index, bytes.to_vec()));
                }
            });
            match read {
                Ok(_) => {
                    for (index, bytes) in last {
                        println!("{}", json_line(index, &bytes));
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        AuditCommand::Export {
            data_dir,
            database_url,
            format,
            start,
        } => {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut broken = false;
            let read = for_each_entry(&data_dir, database_url.as_deref(), start, |index, bytes| {
                if index < start || broken {
                    return;
                }
                let line = match format {
                    ExportFormat::Jsonl => json_line(index, bytes),
                    ExportFormat::Cef => rampart_audit::export::cef_line(index, bytes),
                };
                broken = writeln!(out, "{line}").is_err();
            });
            let _ = out.flush();
            match read {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        AuditCommand::Repair { data_dir } => match rampart_audit::repair(&audit_dir(&data_dir)) {
            Ok(0) => {
                println!("nothing to repair");
                ExitCode::SUCCESS
            }
            Ok(bytes) => {
                println!("cut {bytes} bytes of unacknowledged tail");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        AuditCommand::RotateKey { data_dir } => {
            match rampart_audit::rotate_key(&audit_dir(&data_dir)) {
                Ok(key) => {
                    println!("new verifier key: {key}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
    }
}

/// Calls `each` with the log's entries from `start` on: the data dir's segment files,
/// or the shared log in Postgres when `database_url` is given.
fn for_each_entry(
    data_dir: &Path,
    database_url: Option<&str>,
    start: u64,
    each: impl FnMut(u64, &[u8]),
) -> Result<u64, rampart_audit::AuditLogError> {
    let Some(url) = database_url else {
        return rampart_audit::verify::read_entries(&audit_dir(data_dir), each);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| rampart_audit::AuditLogError::Io(e.to_string()))?;
    runtime.block_on(async {
        let store = rampart_store::Store::open_postgres(url)
            .await
            .map_err(|e| rampart_audit::AuditLogError::Io(e.to_string()))?;
        rampart_audit::verify::read_entries_database(&store, start, each).await
    })
}

fn json_line(index: u64, bytes: &[u8]) -> String {
    format!(
        "{{\"index\":{index},\"entry\":{}}}",
        String::from_utf8_lossy(bytes)
    )
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}

fn verify(dir: &Path, database_url: Option<&str>, keys: &[String], quiet: bool) -> ExitCode {
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    let keys = (!keys.is_empty()).then_some(keys);
    let report = match database_url {
        None => {
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "verifying {bar:40} {bytes}/{total_bytes} ({eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            rampart_audit::verify::verify(dir, keys, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
        }
        Some(url) => {
            bar.set_style(
                indicatif::ProgressStyle::with_template("verifying {pos} entries")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(&e),
            };
            runtime.block_on(async {
                let store = rampart_store::Store::open_postgres(url)
                    .await
                    .map_err(|e| rampart_audit::AuditLogError::Io(e.to_string()))?;
                rampart_audit::verify::verify_database(&store, keys, |done, _| {
                    bar.set_position(done);
                })
                .await
            })
        }
    };
    bar.finish_and_clear();
    match report {
        Ok(report) => match report.problem {
            None => {
                println!(
                    "ok: {} entries, {} signed checkpoints verified",
                    report.entries, report.checkpoints
                );
                ExitCode::SUCCESS
            }
            Some((index, problem)) => {
                eprintln!("bad entry at index {index}: {problem}");
                ExitCode::FAILURE
            }
        },
        Err(e) => fail(&e),
    }
}
