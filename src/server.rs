//! Wiring: build storage, registry, auth and the router from the config and serve until stopped.
