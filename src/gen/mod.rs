//! Program builder and generators (dns, dns_validate, suffix, tcpdump); iptables script rendering.
