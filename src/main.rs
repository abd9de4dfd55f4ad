//! The `mesa` binary: parse flags, set up logging, run, and map the outcome to an exit code.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser};
use mesa::cli::{Cli, Command, EXIT_INVALID_CONFIG};

fn main() -> ExitCode {
    // Before any thread exists: arenas are per thread.
    mesa::allocator::tune();
    let cli = Cli::parse();

    match cli.command {
        Some(Command::Admin(args)) => {
            return ExitCode::from(mesa::admin_cli::run(*args, &|key| std::env::var(key).ok()));
        }
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "mesa", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        None => {}
    }

    if cli.new_token {
        return match mesa::token::generate() {
            Ok(t) => {
                println!("token:  {}", t.token.expose());
                println!("sha256: {}", t.sha256_hex);
                println!();
                println!(
                    "Give the token to its holder once; put only the sha256 in admin.tokens[].sha256."
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mesa: cannot read the OS random source: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let Some(path) = cli.config_file.as_deref() else {
        eprintln!("mesa: --config.file is required (or use --new-token); see --help");
        return ExitCode::from(EXIT_INVALID_CONFIG);
    };
    // Flags first: a bad shard is reported even when the config has problems too.
    let shard = match (cli.shard_index, cli.shard_count) {
        (Some(index), Some(count)) => match mesa::shard::Shard::new(index, count) {
            Ok(shard) => Some(shard),
            Err(e) => {
                eprintln!("mesa: {e}");
                return ExitCode::from(EXIT_INVALID_CONFIG);
            }
        },
        // clap requires both or neither.
        _ => None,
    };
    let mut config = match mesa::config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mesa: {e}");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    let overrides = mesa::app::Overrides {
        listen_address: cli.web_listen_address,
        web_config_file: cli.web_config_file.clone(),
        shard,
    };
    overrides.apply(&mut config);
    // The web config and the TLS material are checked here too, so --check-config catches
    // what would otherwise fail only at startup.
    let files = match mesa::app::ListenerFiles::load(&config) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("mesa: {e}");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    if cli.check_config {
        for warning in &config.warnings {
            eprintln!("mesa: warning: {warning}");
        }
        for warning in files.warnings() {
            eprintln!("mesa: warning: {warning}");
        }
        println!(
            "{}: valid ({} target{})",
            path.display(),
            config.targets.len(),
            if config.targets.len() == 1 { "" } else { "s" }
        );
        if !cli.live {
            return ExitCode::SUCCESS;
        }
        let runtime = match runtime(tokio::runtime::Builder::new_current_thread()) {
            Ok(rt) => rt,
            Err(code) => return code,
        };
        return match runtime.block_on(mesa::livecheck::run(&config, cli.target.as_deref())) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!(
                    "mesa: some queries do not agree with what the server returns (see above)"
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("mesa: {e}");
                ExitCode::from(EXIT_INVALID_CONFIG)
            }
        };
    }

    if let Err(e) = mesa::logging::init(&cli.log_level, cli.log_format) {
        eprintln!("mesa: {e}");
        return ExitCode::from(EXIT_INVALID_CONFIG);
    }
    for warning in &config.warnings {
        tracing::warn!(problem = %warning, "config warning");
    }
    let runtime = match runtime(daemon_runtime(config.targets.len())) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(mesa::app::run(path, config, overrides)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesa: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A fleet of up to this many targets (at start) runs on one worker thread.
const ONE_WORKER_UP_TO: usize = 64;

/// The daemon's runtime for `targets` targets: one worker thread for a small fleet, one per
/// core beyond. A second worker is woken for nearly every I/O event of a collection, and those
/// wake-ups were a quarter of Mesa's CPU at one target (release build, one target every second
/// with discovery, 60 s, two runs each: 2.8-3.0 ms/s with two workers, 2.0-2.3 with one).
/// Large `/metrics` bodies are built on the blocking pool either way. `TOKIO_WORKER_THREADS`
/// sets the count instead (tokio reads it).
fn daemon_runtime(targets: usize) -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() && targets <= ONE_WORKER_UP_TO {
        builder.worker_threads(1);
    }
    builder
}

/// The async runtime `builder` makes, or the exit code after saying why it could not.
fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|e| {
        eprintln!("mesa: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}
