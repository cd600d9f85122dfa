//! A RabbitMQ node of a test's own (its own port, data directory and node name), for tests that
//! stop and start the broker without disturbing the shared one. Also used by the root crate's
//! end-to-end tests (included there by path).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::unique;

/// A private RabbitMQ node, stopped when dropped.
pub struct PrivateRabbit {
    node: String,
    port: u16,
    dir: PathBuf,
}

impl PrivateRabbit {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("rabbit"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        let node = format!("{}@localhost", unique("vbtest"));
        let rabbit = Self { node, port, dir };
        rabbit.boot();
        rabbit
    }

    fn ctl(&self) -> Command {
        let mut command = Command::new("rabbitmqctl");
        // The node and the CLI must share the Erlang cookie, which lives in RabbitMQ's home.
        command.env("HOME", "/var/lib/rabbitmq").args(["-n", &self.node]);
        command
    }

    pub fn boot(&self) {
        // Debian's `/usr/sbin/rabbitmq-server` wrapper switches to the rabbitmq user and drops the
        // environment; the script behind it runs the node with the settings given here.
        let server = ["/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("rabbitmq-server");
        let status = Command::new(server)
            .arg("-detached")
            .env("HOME", "/var/lib/rabbitmq")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", (u32::from(self.port) % 20000 + 30000).to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("no-config"))
            .status()
            .expect("rabbitmq-server is installed (scripts/test.sh installs it)");
        assert!(status.success());
        // `-detached` returns before the node exists; wait for its AMQP port, then for boot to finish.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "private RabbitMQ did not open port {}", self.port);
            std::thread::sleep(Duration::from_millis(200));
        }
        let ready = self.ctl().args(["await_startup", "--timeout", "60"]).output().unwrap();
        assert!(ready.status.success(), "private RabbitMQ did not start: {}", String::from_utf8_lossy(&ready.stderr));
    }

    pub fn stop(&self) {
        let _ = self.ctl().arg("stop").output();
    }

    /// Force-closes every client connection, as an operator or a failing load balancer would.
    #[allow(dead_code)]
    pub fn close_all_connections(&self) {
        let closed = self.ctl().args(["close_all_connections", "fault injection"]).output().unwrap();
        assert!(closed.status.success(), "{closed:?}");
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
