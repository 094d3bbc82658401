//! The embedded in-process event log (being written).
