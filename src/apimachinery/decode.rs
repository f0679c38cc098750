//! Strict decoding of request bodies against a kind's OpenAPI schema: unknown fields and type errors.
