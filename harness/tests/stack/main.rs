//! `harness up` / `status` / `down` end to end: real processes, real ports.

mod lifecycle;
