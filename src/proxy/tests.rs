//! Socket tests of the proxy.
