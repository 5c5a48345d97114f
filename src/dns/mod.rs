//! The DNS flip at cutover: RFC 2136 with TSIG and external-dns `DNSEndpoint` providers (DESIGN.md §7).
