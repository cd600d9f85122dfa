//! Where a webhook may be sent: HTTPS to public addresses only. Plain HTTP, loopback, private,
//! link-local and cloud-metadata addresses are refused unless the host is on the operator's
//! allow-list. Checked when an endpoint is registered, and at every connection of a delivery by
//! [`Guard`], the client's resolver, against the addresses DNS gives then: the connection goes to
//! an address that was checked, so a name cannot pass the check and then resolve elsewhere. An
//! address written in the URL itself is checked by [`UrlPolicy::check`], as the client does not
//! resolve it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Why a URL is not a place voltbus sends webhooks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL.
    #[error("not a valid URL: {0}")]
    Invalid(String),
    /// Not `https://` (or `http://` to an allow-listed host).
    #[error("the URL must use https")]
    NotHttps,
    /// Credentials in the URL would be logged and shown; headers are the place for them.
    #[error("the URL must not carry a user name or password; use custom headers")]
    Credentials,
    /// The name does not resolve.
    #[error("`{0}` does not resolve")]
    Unresolvable(String),
    /// Resolves to an address inside somebody's network.
    #[error("`{host}` resolves to {address}, which is not a public address")]
    Forbidden {
        /// Host as written.
        host: String,
        /// The refused address.
        address: IpAddr,
    },
}

/// The operator's exceptions.
#[derive(Clone, Debug, Default)]
pub struct UrlPolicy {
    /// Hosts (names or addresses, as written in URLs) that may use plain HTTP and any address.
    pub allow_hosts: Vec<String>,
}

/// A checked URL: where to connect and what to ask for.
#[derive(Clone, Debug)]
pub struct Target {
    /// The URL as registered.
    pub url: Url,
    /// Whether TLS is used.
    pub https: bool,
    /// Host name (for SNI and the Host header).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl UrlPolicy {
    fn allows(&self, host: &str) -> bool {
        self.allow_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// Checks the URL's form: scheme, credentials, host; an address written in it must be public
    /// (unless allow-listed).
    pub fn check(&self, raw: &str) -> Result<Target, UrlError> {
        let url = Url::parse(raw).map_err(|e| UrlError::Invalid(e.to_string()))?;
        let (host, written) = match url.host() {
            Some(Host::Domain(name)) => (name.to_ascii_lowercase(), None),
            Some(Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
            None => return Err(UrlError::Invalid("the URL has no host".into())),
        };
        let https = match url.scheme() {
            "https" => true,
            "http" if self.allows(&host) => false,
            _ => return Err(UrlError::NotHttps),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        if let Some(address) = written.filter(|ip| !is_public(*ip) && !self.allows(&host)) {
            return Err(UrlError::Forbidden { host, address });
        }
        let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
        Ok(Target { url, https, host, port })
    }

    /// Resolves the target now and returns the addresses it may be reached at.
    pub async fn resolve(&self, target: &Target) -> Result<Vec<SocketAddr>, UrlError> {
        let addresses: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, target.port)],
            Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|_| UrlError::Unresolvable(target.host.clone()))?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(UrlError::Unresolvable(target.host.clone()));
        }
        if !self.allows(&target.host) {
            // Every address must be public: the client may pick any of them.
            if let Some(bad) = addresses.iter().find(|a| !is_public(a.ip())) {
                return Err(UrlError::Forbidden { host: target.host.clone(), address: bad.ip() });
            }
        }
        Ok(addresses)
    }
}

/// The resolver of a [`crate::guarded`] client: resolves a name as the system does, then lets
/// the connection go only to addresses the policy allows (all of them public, or an
/// allow-listed host), so the check and the connection see the same answer.
#[derive(Debug)]
pub struct Guard {
    policy: UrlPolicy,
}

impl Guard {
    /// A resolver applying `policy`.
    pub fn new(policy: UrlPolicy) -> Self {
        Self { policy }
    }
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let target = Target {
                url: Url::parse(&format!("https://{host}/")).map_err(|e| UrlError::Invalid(e.to_string()))?,
                https: true,
                host,
                port: 0,
            };
            let addresses: Addrs = Box::new(policy.resolve(&target).await?.into_iter());
            Ok(addresses)
        })
    }
}

/// Whether `ip` is reachable on the public internet (and so not a way into the platform's network).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local, includes fd00:ec2::254
                || (segments[0] & 0xffc0) == 0xfe80 // link-local
                || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated, still routed inside)
                || segments[0] == 0x2001 && segments[1] == 0xdb8 // documentation
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, includes the cloud metadata address 169.254.169.254
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a >= 240
        || (a == 100 && (b & 0xc0) == 64) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18)) // benchmarking 198.18/15
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_inside_addresses_and_accepts_public_ones() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(inside.parse().unwrap()), "{inside} must be refused");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public} is public");
        }
    }

    #[tokio::test]
    async fn http_and_loopback_only_when_allow_listed() {
        let strict = UrlPolicy::default();
        assert_eq!(strict.check("http://127.0.0.1:9/x").unwrap_err(), UrlError::NotHttps);
        assert_eq!(strict.check("ftp://example.com/").unwrap_err(), UrlError::NotHttps);
        assert_eq!(strict.check("https://u:p@example.com/").unwrap_err(), UrlError::Credentials);
        assert!(matches!(strict.check("not a url"), Err(UrlError::Invalid(_))));
        assert!(matches!(strict.check("https://127.0.0.1:9/x"), Err(UrlError::Forbidden { .. })));
        let named = strict.check("https://localhost:9/x").unwrap();
        assert!(matches!(strict.resolve(&named).await, Err(UrlError::Forbidden { .. })));
        assert!(matches!(strict.check("https://169.254.169.254/latest/meta-data"), Err(UrlError::Forbidden { .. })));

        let allowed = UrlPolicy { allow_hosts: vec!["127.0.0.1".into()] };
        let target = allowed.check("http://127.0.0.1:9/x").unwrap();
        assert!(!target.https);
        assert_eq!(allowed.resolve(&target).await.unwrap(), vec!["127.0.0.1:9".parse().unwrap()]);
    }
}
