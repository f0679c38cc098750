//! managedFields: FieldsV1 sets and the Update entries recorded per field manager.
