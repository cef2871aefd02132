//! `rampart waf …`: the WAF engine's tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use rampart_waf::conformance::{self, Verdict};

/// WAF commands.
#[derive(Subcommand)]
pub enum WafCommand {
    /// Run go-ftw style YAML tests (such as the CRS regression suite) in-process, in
    /// the configuration the CRS documents for its suite; print a line per failing
    /// case, then `N passed, M failed, K skipped`.
    Conformance {
        /// The rules' entry file (it includes `crs-setup.conf` and `rules/*.conf`).
        #[arg(long)]
        rules: PathBuf,
        /// The directory of YAML tests.
        #[arg(long)]
        tests: PathBuf,
        /// Also write every case's result as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// Runs one WAF command.
pub fn run(command: WafCommand) -> ExitCode {
    match command {
        WafCommand::Conformance { rules, tests, json } => {
            let engine = match conformance::engine_for_tests(&rules) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let results = match conformance::run(&engine, &tests) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            for r in &results {
                match &r.verdict {
                    Verdict::Failed(why) => println!("FAIL {}: {why}", r.name),
                    Verdict::Skipped(why) => println!("SKIP {}: {why}", r.name),
                    Verdict::Passed => {}
                }
            }
            if let Some(path) = json {
                let cases: Vec<serde_json::Value> = results
                    .iter()
                    .map(|r| {
                        let (verdict, reason) = match &r.verdict {
                            Verdict::Passed => ("passed", String::new()),
                            Verdict::Failed(w) => ("failed", w.clone()),
                            Verdict::Skipped(w) => ("skipped", w.clone()),
                        };
                        serde_json::json!({ "case": r.name, "verdict": verdict, "reason": reason })
                    })
                    .collect();
                if let Err(e) =
                    std::fs::write(&path, serde_json::to_vec_pretty(&cases).unwrap_or_default())
                {
                    eprintln!("cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            let s = conformance::summarize(&results);
            println!(
                "{} passed, {} failed, {} skipped",
                s.passed, s.failed, s.skipped
            );
            if s.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
