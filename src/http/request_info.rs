//! RequestInfo: what a request path and method mean (verb, resource, namespace, name), as in Go.
