//! Table and PartialObjectMetadata transformations of objects and lists.
