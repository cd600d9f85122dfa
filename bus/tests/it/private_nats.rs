//! A nats-server with JetStream of a test's own (own port and store), so the test may restart
//! it, or keep durable consumers apart from every other test's. Shared by the bus's tests and
//! the end-to-end tests.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use crate::support::unique;

/// A private nats-server with JetStream.
pub struct PrivateNats {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Extra configuration (`-c` file), e.g. operator mode.
    config: Option<PathBuf>,
    /// Further command-line arguments (a cluster node's name and routes).
    args: Vec<String>,
}

impl PrivateNats {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// One whose configuration file also holds `config` (e.g. the operator-mode lines).
    #[allow(dead_code)]
    pub fn with_config(config: &str) -> Self {
        Self::start_with(Some(config))
    }

    fn start_with(config: Option<&str>) -> Self {
        Self::start_with_args(config, Vec::new())
    }

    fn start_with_args(config: Option<&str>, args: Vec<String>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("nats"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = config.map(|config| {
            let path = dir.join("server.conf");
            std::fs::write(&path, config).unwrap();
            path
        });
        let mut server = Self { port, dir, child: None, config, args };
        server.boot();
        server
    }

    pub fn boot(&mut self) {
        let binary = ["/usr/sbin/nats-server", "nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server");
        let mut command = Command::new(binary);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.dir)
            .args(&self.args)
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.join("nats.log"))
                    .map_or_else(|_| std::process::Stdio::null(), Into::into),
            )
            .spawn()
            .expect("nats-server is installed (scripts/test.sh installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default();
        panic!("private nats-server did not listen on {}:\n{log}", self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's process id (while it runs).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nats-servers of a test's own joined in one JetStream cluster (own client and cluster ports,
/// own stores), for replicated streams and their leaders' failures.
#[allow(dead_code)]
pub struct PrivateNatsCluster {
    /// The servers, named `<cluster>-<index>`.
    pub nodes: Vec<PrivateNats>,
    name: String,
}

#[allow(dead_code)]
impl PrivateNatsCluster {
    pub fn start(size: usize) -> Self {
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster_ports: Vec<u16> = (0..size).map(|_| free()).collect();
        let routes: Vec<String> = cluster_ports.iter().map(|port| format!("nats://127.0.0.1:{port}")).collect();
        let name = unique("vbc");
        let nodes = cluster_ports
            .iter()
            .enumerate()
            .map(|(index, port)| {
                let args = [
                    "--name".to_owned(),
                    format!("{name}-{index}"),
                    "--cluster_name".to_owned(),
                    name.clone(),
                    "--cluster".to_owned(),
                    format!("nats://127.0.0.1:{port}"),
                    "--routes".to_owned(),
                    routes.join(","),
                ];
                PrivateNats::start_with_args(None, args.to_vec())
            })
            .collect();
        Self { nodes, name }
    }

    /// Every server's client URL, separated by commas (as `nats.url` takes a cluster).
    pub fn url(&self) -> String {
        self.nodes.iter().map(PrivateNats::url).collect::<Vec<_>>().join(",")
    }

    /// The index of the server named `server`.
    pub fn index_of(&self, server: &str) -> Option<usize> {
        server.strip_prefix(&format!("{}-", self.name))?.parse().ok()
    }
}
