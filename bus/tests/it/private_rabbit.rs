//! A RabbitMQ node of a test's own (its own port, data directory and node name), for tests that
//! stop and start the broker without disturbing the shared one. Also used by the root crate's
//! end-to-end tests (included there by path).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use uuid::Uuid;

use crate::support::unique;

/// A private RabbitMQ node, stopped when dropped.
pub struct PrivateRabbit {
    node: String,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
}

impl PrivateRabbit {
    pub fn start() -> Self {
        // A node that fails to start (a port taken between choosing and binding it) gets one more
        // try on other ports; its log goes into the failure when that fails too.
        let mut last = String::new();
        for _ in 0..2 {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("rabbit"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
            let node = format!("{}@localhost", unique("vbtest"));
            let port = listener_port();
            let dist_port = std::iter::repeat_with(listener_port).find(|p| *p != port).unwrap();
            let rabbit = Self { node, port, dist_port, dir };
            match rabbit.try_boot() {
                Ok(()) => return rabbit,
                Err(failure) => last = failure,
            }
        }
        panic!("{last}");
    }

    /// `rabbitmqctl` aimed at this node.
    pub fn ctl(&self) -> Command {
        let mut command = rabbitmqctl();
        // The node and the CLI must share the Erlang cookie, which lives in RabbitMQ's home.
        command.env("HOME", "/var/lib/rabbitmq").args(["-n", &self.node]);
        command
    }

    /// Starts the node again on its ports (after `stop`), panicking with its log if it does not come up.
    pub fn boot(&self) {
        if let Err(failure) = self.try_boot() {
            panic!("{failure}");
        }
    }

    fn try_boot(&self) -> Result<(), String> {
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
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
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
            if std::time::Instant::now() > deadline {
                self.stop();
                return Err(format!("private RabbitMQ did not open port {}:\n{}", self.port, self.log()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let ready = self.ctl().args(["await_startup", "--timeout", "60"]).output().unwrap();
        if !ready.status.success() {
            self.stop();
            return Err(format!(
                "private RabbitMQ did not start: {}\n{}",
                String::from_utf8_lossy(&ready.stderr),
                self.log()
            ));
        }
        Ok(())
    }

    /// The tail of everything the node wrote to its log directory.
    fn log(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.join("log")).into_iter().flatten().flatten() {
            let written = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = written.lines().rev().take(40).collect();
            text += &format!("--- {}\n", entry.path().display());
            tail.into_iter().rev().for_each(|line| text += &format!("{line}\n"));
        }
        text
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

    /// Makes this (running) node a member of `other`'s cluster, leaving its own data behind.
    #[allow(dead_code)]
    pub fn join(&self, other: &PrivateRabbit) {
        for step in [&["stop_app"][..], &["reset"], &["join_cluster", &other.node], &["start_app"]] {
            let done = self.ctl().args(step).output().unwrap();
            assert!(done.status.success(), "{step:?}: {}\n{}", String::from_utf8_lossy(&done.stderr), self.log());
        }
    }
}

/// RabbitMQ nodes of a test's own joined in one cluster (quorum queues replicated across them).
#[allow(dead_code)]
pub struct PrivateRabbitCluster {
    pub nodes: Vec<PrivateRabbit>,
}

#[allow(dead_code)]
impl PrivateRabbitCluster {
    pub fn start(size: usize) -> Self {
        let nodes: Vec<PrivateRabbit> = (0..size).map(|_| PrivateRabbit::start()).collect();
        for node in &nodes[1..] {
            node.join(&nodes[0]);
        }
        // A quorum queue gets members on the nodes running when it is declared: one declared
        // before the first node sees every other running got fewer, and lost its majority with
        // one node (seen once: 60 s of nacks after the first node stopped).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status = nodes[0].ctl().args(["cluster_status", "--formatter", "json"]).output().unwrap();
            let running = serde_json::from_slice::<serde_json::Value>(&status.stdout)
                .ok()
                .and_then(|status| status["running_nodes"].as_array().map(Vec::len));
            if running == Some(size) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the cluster never showed {size} running nodes: {running:?}");
            std::thread::sleep(Duration::from_millis(250));
        }
        Self { nodes }
    }

    /// Every node's URL, separated by commas (as `amqp.url` takes a cluster).
    pub fn url(&self) -> String {
        self.nodes.iter().map(PrivateRabbit::url).collect::<Vec<_>>().join(",")
    }
}

/// `rabbitmqctl`, one at a time across every test process of the machine, and killed after 90 s:
/// two run at once by parallel tests were seen to hang each other (a test then hung until cut).
pub fn rabbitmqctl() -> Command {
    locked(&[])
}

/// [`rabbitmqctl`] through `sudo -n`, for a CLI only root may run; under the same lock.
#[allow(dead_code)]
pub fn rabbitmqctl_as_root() -> Command {
    locked(&["sudo", "-n"])
}

fn locked(prefix: &[&str]) -> Command {
    let mut command = Command::new("flock");
    command.arg(std::env::temp_dir().join("voltbus-rabbitmqctl.lock")).args(prefix);
    command.args(["timeout", "-k", "5", "90", "rabbitmqctl"]);
    command
}

/// A free port below the kernel's ephemeral range, so no outgoing connection of another test takes it
/// while the node is stopped between a test's restarts.
fn listener_port() -> u16 {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let seed = Uuid::now_v7().as_u128();
    (0..1000u128)
        .map(|i| {
            10_000
                + ((seed >> 16).wrapping_add(i * 7919) % u128::from(first_ephemeral.saturating_sub(10_000).max(1)))
                    as u16
        })
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below the ephemeral range")
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
