//! The cluster coordinator: one elected agent places replicas, tracks node
//! lifecycle and writes component status, every write fenced by its
//! election.
