//! Continue tokens for paginated lists, in the Go apiserver's format, pinned to the first page's RV.
