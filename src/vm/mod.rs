//! Validation with the kernel's rules, interpretation with the kernel's run-time semantics, and
//! tracing of one packet.
