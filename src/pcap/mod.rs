//! pcap and pcapng reading, classic pcap writing, link types and normalization to Ethernet.
