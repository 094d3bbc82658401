//! The `mqtt-integration` binary: command line, configuration, signals.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mqtt_integration::cli::{self, Cli, Command};
use mqtt_integration::config::{Config, LogFormat};
use mqtt_integration::ops::{logging, systemd, PidFile};
use mqtt_integration::server::{reload, Server};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.is_some() {
        // The subcommands read no `[log]` section.
        logging::init(LogFormat::Text);
    }
    match cli.command {
        Some(Command::CheckConfig { file }) => match cli::check_config(&file) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(cli::EXIT_CONFIG as u8)
            }
        },
        Some(Command::ApiKey { user }) => match cli::api_key(&user) {
            Ok(lines) => {
                print!("{lines}");
                eprintln!("Give the first line to `{user}`; add the second to the `api_keys` of [[user]] name = \"{user}\".");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(cli::EXIT_RUNTIME as u8)
            }
        },
        Some(Command::Reload) => match cli::reload(cli.config.as_deref()) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(cli::ReloadFailure::Config(e)) => {
                eprintln!("{e}\nnothing was sent: the running service keeps its configuration");
                ExitCode::from(cli::EXIT_CONFIG as u8)
            }
            Err(cli::ReloadFailure::Runtime(e)) => {
                eprintln!("error: {e}");
                ExitCode::from(cli::EXIT_RUNTIME as u8)
            }
        },
        None => run(cli.config.as_deref()),
    }
}

fn run(config_path: Option<&Path>) -> ExitCode {
    let mut config =
        match Config::load(config_path, mqtt_integration::config::process_environment()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(cli::EXIT_CONFIG as u8);
            }
        };
    // After loading: the format is configured. Configuration errors above go to stderr as text.
    logging::init(config.log.format);
    let open_files = mqtt_integration::ops::open_files::raise_to_hard_limit();
    tracing::debug!(?open_files, "open files limit");
    // Register for signals before starting, so an early SIGTERM is not lost.
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::from(cli::EXIT_RUNTIME as u8);
        }
    };
    let server = match Server::start(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(cli::EXIT_RUNTIME as u8);
        }
    };
    // systemd's READY=1 means "serving": wait for the backend as /readyz does (Kafka may still
    // be connecting), while still honouring a stop request.
    let mut stop = None;
    if !server.backend_ready() {
        tracing::info!(
            mqtt = ?server.mqtt_addrs(),
            http = %server.http_addr(),
            "listeners bound; waiting for the backend to be ready"
        );
    }
    while stop.is_none() && !server.backend_ready() {
        stop = signals.pending().find(|s| *s != SIGHUP);
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(signal) = stop {
        tracing::info!(signal, "shutting down before the backend was ready");
        systemd::stopping();
        server.shutdown();
        return ExitCode::SUCCESS;
    }
    // Written once ready: `mqtt-integration reload` signals only a process that can reload.
    let _pid_file = match config.server.pid_file().map(|p| (p, PidFile::create(p))) {
        None => None,
        Some((_, Ok(file))) => Some(file),
        Some((path, Err(e))) => {
            tracing::error!(path = %path.display(), "cannot write server.pid_file: {e}; `mqtt-integration reload` will not find this process (send SIGHUP by pid)");
            None
        }
    };
    systemd::ready();
    let watchdog = systemd::Watchdog::start(server.liveness().clone());
    tracing::info!(
        mqtt = ?server.mqtt_addrs(),
        http = %server.http_addr(),
        backend = ?config.backend.kind,
        "mqtt-integration is ready"
    );
    for signal in signals.forever() {
        if signal == SIGHUP {
            // Live reconfiguration: applications, devices, users, keys and [auth].
            reload::on_signal(&server, config_path, &mut config);
            // Certificate rotation: re-read the TLS files without dropping connections.
            for result in server.reload_tls() {
                match result {
                    Ok(()) => tracing::info!("TLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!("TLS reload failed, keeping the current certificate: {e}")
                    }
                }
            }
            continue;
        }
        tracing::info!(signal, "shutting down");
        break;
    }
    systemd::stopping();
    if let Some(w) = watchdog {
        w.stop();
    }
    server.shutdown();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
