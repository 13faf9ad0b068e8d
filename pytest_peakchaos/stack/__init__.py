"""Stack: compose parsing, containers, Toxiproxy wiring and teardown."""
