//! Resource request handlers: decode the request, call the registry, encode the answer.
