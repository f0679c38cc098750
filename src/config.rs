//! Command-line flags, named as in the Go sample-apiserver where the meaning is the same.
