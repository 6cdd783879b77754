//! Placement: which nodes run how many replicas of a component. Pure: no
//! etcd, no Docker. Shared by the coordinator and the CLI (`describe`).
