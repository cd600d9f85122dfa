//! A PostgreSQL server of a test's own (own port, data directory and socket directory), so the
//! test may restart it without touching the shared one every other test uses. PostgreSQL will
//! not run as root, so the server runs as the `postgres` user the Debian package made.

use std::path::PathBuf;
use std::process::Command;

use crate::support::unique;

pub struct PrivatePostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// Server settings beyond ours (`name=value`), kept across restarts.
    settings: Vec<String>,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with these settings too (`shared_preload_libraries=pg_stat_statements`).
    pub fn start_with(settings: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Under /tmp: the `postgres` user must be able to reach it.
        let dir = std::env::temp_dir().join(unique("voltbus-pg"));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap().success());
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (scripts/test.sh installs it)")
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .find(|bin| bin.join("initdb").exists())
            .expect("an initdb under /usr/lib/postgresql");
        let settings = settings.iter().map(|s| (*s).to_owned()).collect();
        let server = Self { port, dir, bin, settings };
        server.as_postgres("initdb", &["-D", &server.data(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        server.boot();
        server
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) {
        let output = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// Starts the server and waits until it accepts connections.
    pub fn boot(&self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        for setting in &self.settings {
            options.push_str(&format!(" -c {setting}"));
        }
        let log = self.dir.join("postgres.log").display().to_string();
        self.as_postgres("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &options, "-w", "start"]);
    }

    /// Restarts the server: a fast shutdown (every session cut, as a failover or an upgrade
    /// does), then a start.
    pub fn restart(&self) {
        // `-l` again: without it the new server would write to (and hold open) our pipe.
        let log = self.dir.join("postgres.log").display().to_string();
        self.as_postgres("pg_ctl", &["-D", &self.data(), "-l", &log, "-m", "fast", "-w", "restart"]);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Its port.
    #[allow(dead_code)]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A streaming-replication standby of this server (`pg_basebackup -R`), on its own port.
    #[allow(dead_code)]
    pub fn standby(&self) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(unique("voltbus-pg"));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap().success());
        // None of the primary's settings: a promoted standby waiting for a standby of its own
        // (`synchronous_standby_names`) would never commit.
        let standby = Self { port, dir, bin: self.bin.clone(), settings: Vec::new() };
        let primary_port = self.port.to_string();
        let args =
            ["-D", &standby.data(), "-h", "127.0.0.1", "-p", &primary_port, "-U", "postgres", "-R", "-X", "stream"];
        standby.as_postgres("pg_basebackup", &args);
        standby.boot();
        standby
    }

    /// Stops the server at once, as a crash would.
    #[allow(dead_code)]
    pub fn crash(&self) {
        self.as_postgres("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }

    /// Makes a standby the primary.
    #[allow(dead_code)]
    pub fn promote(&self) {
        self.as_postgres("pg_ctl", &["-D", &self.data(), "-w", "promote"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
