//! The data plane: `ferry mover send|receive`, rsync over Ferry's own mutual-TLS tunnel (DESIGN.md §6).
