//! voltbus's one outbound HTTP client: reqwest over rustls (ring, webpki roots), configured here
//! once, for every request voltbus makes: webhook deliveries, the payment providers, RabbitMQ's
//! management API, the fleet simulator's calls.
//!
//! Two ways to build it, the same library and settings underneath:
//! - [`trusted`]: services the operator configured (providers, the broker): their addresses are
//!   the operator's, so nothing is checked beyond TLS.
//! - [`guarded`]: partners' webhook endpoints. Every connection goes through [`ssrf::Guard`],
//!   which resolves the name and refuses the connection unless every address is public (or the
//!   host is on the operator's allow-list), so a name cannot pass a check and then resolve
//!   elsewhere: the client connects to the addresses that were checked. Redirects are not
//!   followed. Kept connections go back to the address checked when they were opened.
//!
//! Layout: this file (the builders), `ssrf` (the URL and address rules, the resolver).

pub mod ssrf;

use std::sync::Arc;
use std::time::Duration;

pub use reqwest::{Client, Error, Method, Response, StatusCode, header};

/// How long an idle connection is kept. Below the shortest keep-alive of common servers
/// (Node.js closes idle connections after 5 s), so a kept one is rarely found closed.
const IDLE_FOR: Duration = Duration::from_secs(4);
/// Idle connections kept per host: more than a webhook endpoint's concurrent attempts (8).
const IDLE_PER_HOST: usize = 32;
/// Longest wait for a connection (TCP and TLS) to a service.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

fn builder(user_agent: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .use_rustls_tls()
        .connect_timeout(CONNECT_WITHIN)
        .pool_idle_timeout(IDLE_FOR)
        .pool_max_idle_per_host(IDLE_PER_HOST)
        .tcp_nodelay(true)
}

/// A client for services the operator configured, each request within `timeout`.
pub fn trusted(user_agent: &str, timeout: Duration) -> Result<Client, Error> {
    builder(user_agent).timeout(timeout).build()
}

/// A client for partners' endpoints: every connection through the SSRF guard of `policy`,
/// no redirect followed. Callers bound each request's time themselves (an attempt's timeout).
pub fn guarded(user_agent: &str, policy: ssrf::UrlPolicy) -> Result<Client, Error> {
    builder(user_agent)
        .dns_resolver(Arc::new(ssrf::Guard::new(policy)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A server on 127.0.0.1 answering every request with a redirect to `elsewhere`.
    async fn redirecting(elsewhere: &'static str) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                let answer = format!("HTTP/1.1 302 Found\r\nlocation: {elsewhere}\r\ncontent-length: 0\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn the_guard_checks_every_connection_and_no_redirect_is_followed() {
        // The name passes the form check but resolves to loopback: refused when connecting.
        let strict = guarded("test", ssrf::UrlPolicy::default()).unwrap();
        let refused = strict.get("https://localhost:9/").timeout(Duration::from_secs(5)).send().await.unwrap_err();
        let mut cause = std::error::Error::source(&refused);
        let mut said = String::new();
        while let Some(error) = cause {
            said.push_str(&error.to_string());
            cause = error.source();
        }
        assert!(said.contains("not a public address"), "{said}");

        // Allowed to reach this machine by address, a receiver's redirect is answered, not followed.
        let policy = ssrf::UrlPolicy { allow_hosts: vec!["127.0.0.1".into()] };
        let client = guarded("test", policy).unwrap();
        let addr = redirecting("http://169.254.169.254/latest/meta-data").await;
        let answer = client.get(format!("http://{addr}/hooks")).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::FOUND);
    }
}
