//! The watch cache (one per process): current objects and a window of recent events, fed by one
//! tailer reading the `events` log in RV order; serves lists/gets at its head and watches.
