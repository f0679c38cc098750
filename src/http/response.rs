//! Encoding responses and turning ApiError into a Status response: the one place errors become HTTP.
