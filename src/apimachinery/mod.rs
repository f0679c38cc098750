//! Generic Kubernetes machinery, independent of wardle's types: Status errors, ObjectMeta rules,
//! selectors, continue tokens, patches, managed fields, strict decoding.

pub mod apply;
pub mod continue_token;
pub mod cpu;
pub mod decode;
pub mod delete_body;
pub mod fields;
pub mod gofmt;
pub mod gotime;
pub mod labels;
pub mod managed_fields;
pub mod meta;
pub mod names;
pub mod options;
pub mod patch;
pub mod query;
pub mod status;
pub mod verb;
