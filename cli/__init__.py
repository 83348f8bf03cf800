"""vigil.cli: the `vigil` command. Thin: it parses, calls the library and maps errors."""
