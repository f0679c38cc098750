//! Content negotiation: Accept (json, yaml, Table, PartialObjectMetadata) and request Content-Type.
