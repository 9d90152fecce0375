//! The chain walk of `aws cloudtrail validate-logs` (to be written).
