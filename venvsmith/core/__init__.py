"""The core both services share: wire stubs aside, value types, index client, config."""
