//! OpenAPI v2 and v3 documents built from the declared resources.
