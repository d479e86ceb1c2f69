"""The reference TCP/UDP/IPv4 stack (sans-I/O core); built in later issues."""
