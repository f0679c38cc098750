//! generateName: the random suffix the Go apiserver appends.
