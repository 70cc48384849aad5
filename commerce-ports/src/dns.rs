//! The DNS lookup port, with the authoritative and the recursive view kept apart so propagation can be
//! diagnosed.

use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::DnsError;
use crate::forward::forward_port;

/// Record types the domain logic asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RecordType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Alias.
    Cname,
    /// Text.
    Txt,
    /// Name server.
    Ns,
    /// Certification authority authorization (RFC 8659).
    Caa,
}

/// Which view of DNS to ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DnsView {
    /// The resolver's recursive view (with caches).
    Recursive,
    /// One authoritative server, asked directly without recursion.
    Authoritative(SocketAddr),
}

/// The response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ResponseCode {
    /// Success (possibly with no records: NODATA).
    NoError,
    /// The name does not exist.
    NxDomain,
    /// The server failed (including DNSSEC validation failures).
    ServFail,
    /// The server refused.
    Refused,
}

/// Record data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RecordData {
    /// IPv4.
    A(Ipv4Addr),
    /// IPv6.
    Aaaa(Ipv6Addr),
    /// Alias target (absolute, lower case, no trailing dot).
    Cname(String),
    /// TXT strings, joined per record.
    Txt(String),
    /// Name server host.
    Ns(String),
    /// CAA record.
    Caa {
        /// Flags (128 = critical).
        flags: u8,
        /// Tag (`issue`, `issuewild`, `iodef`, ...).
        tag: String,
        /// Value.
        value: String,
    },
}

impl RecordData {
    /// The address, for A and AAAA records.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            RecordData::A(a) => Some(IpAddr::V4(*a)),
            RecordData::Aaaa(a) => Some(IpAddr::V6(*a)),
            _ => None,
        }
    }
}

/// One record of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DnsRecord {
    /// Owner name (lower case, no trailing dot).
    pub name: String,
    /// Time to live in seconds.
    pub ttl: u32,
    /// Data.
    pub data: RecordData,
}

impl DnsRecord {
    /// A record.
    pub fn new(name: impl Into<String>, ttl: u32, data: RecordData) -> DnsRecord {
        DnsRecord { name: name.into(), ttl, data }
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DnsAnswer {
    /// Response code.
    pub rcode: ResponseCode,
    /// Answer records, including any CNAME chain followed.
    pub records: Vec<DnsRecord>,
    /// The AA bit: true when an authoritative server answered for its zone.
    pub authoritative: bool,
}

impl DnsAnswer {
    /// An answer.
    pub fn new(rcode: ResponseCode, records: Vec<DnsRecord>, authoritative: bool) -> DnsAnswer {
        DnsAnswer { rcode, records, authoritative }
    }
}

/// Looks names up.
///
/// # Contract
/// - NXDOMAIN, SERVFAIL and REFUSED are answers (`Ok` with the code), not errors: the domain logic reports
///   them precisely. Errors are for not getting an answer at all (`Timeout`, `Unavailable`).
/// - `DnsView::Authoritative` asks that server without recursion and without any cache.
/// - Names are compared case-insensitively; returned names are lower case without a trailing dot.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait DnsResolver: Send + Sync + Debug + 'static {
    /// Looks up `name` / `record_type` in `view`.
    ///
    /// # Errors
    /// `Timeout` (no answer; lame delegation), `Unavailable`, `InvalidRequest` for a malformed name.
    async fn lookup(&self, name: &str, record_type: RecordType, view: DnsView) -> Result<DnsAnswer, DnsError>;

    /// The addresses of the authoritative servers of the zone that contains `name`.
    ///
    /// # Errors
    /// As `lookup`; `NotFound` when no delegation exists.
    async fn authoritative_servers(&self, name: &str) -> Result<Vec<SocketAddr>, DnsError>;
}

forward_port!(DnsResolver {
    async fn lookup(&self, name: &str, record_type: RecordType, view: DnsView) -> Result<DnsAnswer, DnsError>;
    async fn authoritative_servers(&self, name: &str) -> Result<Vec<SocketAddr>, DnsError>;
});
