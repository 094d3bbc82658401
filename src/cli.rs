//! Command-line parsing (spec §6). Running the server is `main`'s job; this module only says
//! what was asked for, and implements `check-config`, `api-key` and `reload`.
//!
//! Owns: the commands, their arguments and exit codes. Must not touch: a running service's
//! state (`reload` only signals the process a pid file names).

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::auth::{self, NewApiKey};
use crate::config::{self, Config, ConfigError, ConfigErrorKind};

/// Exit code for a configuration error.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code for a failure while running.
pub const EXIT_RUNTIME: i32 = 1;

/// Streams IoT device events from an event log to MQTT subscribers as CloudEvents, and carries
/// commands back.
#[derive(Debug, Parser)]
#[command(
    name = "mqtt-integration",
    version,
    after_help = "Every configuration key can be overridden by an environment variable \
                  MQTT_INTEGRATION__SECTION__KEY, e.g. MQTT_INTEGRATION__SERVER__THREADS=4.\n\
                  Exit codes: 0 success, 1 runtime failure, 2 configuration error."
)]
pub struct Cli {
    /// Configuration file (TOML). Without it, the built-in defaults: embedded backend, MQTT on
    /// 127.0.0.1:1883, HTTP on 127.0.0.1:8081, anonymous access to application `demo`.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// What to do; without a command, run the service.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands other than running the service.
#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Validate a configuration file (with environment overrides applied) and exit: 0 if it is
    /// valid, 2 with a message naming the key and the problem if not.
    CheckConfig {
        /// The configuration file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Make a new API key for USER and print two lines: the key (give it to the user, it is
    /// shown only this once), then the salted hash to add to that user's `api_keys` in the
    /// configuration.
    ApiKey {
        /// The `[[user]]` name the key is for.
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Tell the running service to reload its configuration (SIGHUP): checks the file given with
    /// `-c` first (exit 2 if it is invalid, nothing is sent), then signals the process named by
    /// its `server.pid_file` (or MQTT_INTEGRATION__SERVER__PID_FILE). The service logs what it
    /// applied and what needs a restart.
    Reload,
}

/// Loads and checks `file` as the service would (with the process's `MQTT_INTEGRATION__…`
/// overrides) and returns the one-line summary to print on success:
/// `FILE: ok (N listeners, M applications, backend embedded)`.
pub fn check_config(file: &Path) -> Result<String, ConfigError> {
    check_config_with_env(file, config::process_environment())
}

fn check_config_with_env(
    file: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<String, ConfigError> {
    let config = Config::load(Some(file), env)?;
    // What only the authenticator knows how to read: API key hashes, the JWKS file.
    auth::check_config(&config.auth, &config.users).map_err(|e| ConfigError {
        source_name: file.display().to_string(),
        key: Some(e.config_key()),
        problem: e.to_string(),
        kind: ConfigErrorKind::Invalid,
    })?;
    Ok(format!(
        "{}: ok ({}, {}, backend {})",
        file.display(),
        count(config.listeners.len(), "listener", "listeners"),
        count(config.apps.len(), "application", "applications"),
        config.backend.kind,
    ))
}

/// `api-key USER`: a new key and its hash, as the two lines to print (spec 6).
pub fn api_key(user: &str) -> Result<String, String> {
    if user.is_empty() {
        return Err("the user name must not be empty".to_owned());
    }
    let NewApiKey { key, hash } =
        auth::generate_api_key().map_err(|e| format!("no random numbers from the OS: {e}"))?;
    Ok(format!("{key}\n{hash}\n"))
}

/// `reload`: checks `file` as `check-config` does, then sends SIGHUP to the process whose pid
/// `server.pid_file` holds. Returns the line to print.
pub fn reload(file: Option<&Path>) -> Result<String, ReloadFailure> {
    // The file the service will read, checked as it will check it: a file that would be refused
    // is not worth a signal.
    if let Some(file) = file {
        check_config(file).map_err(ReloadFailure::Config)?;
    }
    let config =
        Config::load(file, config::process_environment()).map_err(ReloadFailure::Config)?;
    let source = file.map_or("the built-in configuration".into(), |f| {
        f.display().to_string()
    });
    let Some(pid_file) = config.server.pid_file() else {
        return Err(ReloadFailure::Runtime(format!(
            "{source}: server.pid_file is not set, so the running service cannot be found; set it (and restart once), or send SIGHUP yourself (systemctl reload mqtt-integration)"
        )));
    };
    let pid = crate::ops::PidFile::read(pid_file).map_err(ReloadFailure::Runtime)?;
    let target = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| ReloadFailure::Runtime(format!("{}: no valid pid", pid_file.display())))?;
    rustix::process::kill_process(target, rustix::process::Signal::HUP).map_err(|e| {
        ReloadFailure::Runtime(format!(
            "cannot signal process {pid} (from {}): {e}; is the service still running, and are you its user?",
            pid_file.display()
        ))
    })?;
    Ok(format!(
        "sent SIGHUP to process {pid}; it reloads {source} (see its log for what it applied)"
    ))
}

/// Why `reload` sent nothing.
#[derive(Debug)]
pub enum ReloadFailure {
    /// The file is invalid (exit 2).
    Config(ConfigError),
    /// The service cannot be found or signalled (exit 1).
    Runtime(String),
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mqtt-integration").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_runs_with_builtin_defaults() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.config, None);
        assert_eq!(cli.command, None);
    }

    #[test]
    fn config_option() {
        let cli = parse(&["--config", "my.toml"]).unwrap();
        assert_eq!(cli.config.as_deref(), Some(Path::new("my.toml")));
        assert_eq!(cli.command, None);
        let cli = parse(&["-c", "my.toml"]).unwrap();
        assert_eq!(cli.config.as_deref(), Some(Path::new("my.toml")));
    }

    #[test]
    fn commands_and_their_required_argument() {
        for (args, command) in [
            (
                &["check-config", "x.toml"],
                Command::CheckConfig {
                    file: "x.toml".into(),
                },
            ),
            (
                &["api-key", "alice"],
                Command::ApiKey {
                    user: "alice".into(),
                },
            ),
        ] {
            assert_eq!(parse(args).unwrap().command, Some(command), "{args:?}");
            assert!(parse(&args[..1]).is_err(), "{args:?} without its argument");
        }
        assert!(parse(&["--bogus"]).is_err());
    }

    #[test]
    fn reload_command() {
        let cli = parse(&["-c", "x.toml", "reload"]).unwrap();
        assert_eq!(cli.command, Some(Command::Reload));
        assert_eq!(cli.config.as_deref(), Some(Path::new("x.toml")));
    }

    #[test]
    fn api_key_output_round_trips() {
        let out = api_key("alice").unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let hash = auth::ApiKeyHash::parse(lines[1]).unwrap();
        assert!(hash.verify(lines[0]));
        // And the authenticator takes it as the user's key.
        let users = [config::UserConfig {
            name: "alice".into(),
            api_keys: vec![lines[1].to_owned()],
            admin: false,
        }];
        let authenticator =
            auth::Authenticator::new(&config::AuthConfig::default(), &users).unwrap();
        assert!(authenticator
            .authenticate_api_key("alice", lines[0])
            .is_ok());
        assert!(api_key("").is_err());
    }

    #[test]
    fn check_config_refuses_malformed_api_key_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(
            &path,
            "[[user]]\nname = \"alice\"\napi_keys = [\"plain-text-key\"]\n",
        )
        .unwrap();
        let err = check_config_with_env(&path, std::iter::empty()).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("user[0].api_keys[0]"));
        assert!(!err.to_string().contains("plain-text-key"), "{err}");
        let good = auth::generate_api_key().unwrap().hash;
        std::fs::write(
            &path,
            format!("[[user]]\nname = \"alice\"\napi_keys = [\"{good}\"]\n"),
        )
        .unwrap();
        assert!(check_config_with_env(&path, std::iter::empty()).is_ok());
    }

    #[test]
    fn help_describes_commands() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("check-config"), "{help}");
        assert!(help.contains("api-key"), "{help}");
        assert!(help.contains("--config"), "{help}");
        assert!(help.contains("MQTT_INTEGRATION__SECTION__KEY"), "{help}");
    }

    #[test]
    fn check_config_summarises_a_valid_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let summary = check_config_with_env(&path, std::iter::empty()).unwrap();
        assert_eq!(
            summary,
            format!(
                "{}: ok (2 listeners, 1 application, backend embedded)",
                path.display()
            )
        );
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
        let summary = check_config_with_env(&example, std::iter::empty()).unwrap();
        assert!(
            summary.ends_with(": ok (1 listener, 2 applications, backend embedded)"),
            "{summary}"
        );
    }

    #[test]
    fn check_config_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[server]\nthreads = \"x\"\n").unwrap();
        let err = check_config_with_env(&path, std::iter::empty()).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("server.threads"));
        assert!(err.to_string().contains(&path.display().to_string()));
        let env = [(
            "MQTT_INTEGRATION__SERVER__THREADS".to_owned(),
            "2".to_owned(),
        )];
        assert!(check_config_with_env(&path, env).is_ok());
        let missing = dir.path().join("missing.toml");
        assert!(check_config(&missing).unwrap_err().is_unreadable());
    }
}
