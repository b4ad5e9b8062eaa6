//! Port blocks for test stacks, handed out so that no two stacks share one:
//! not two tests of one binary, not two test binaries run at once, and not a
//! stack someone runs by hand on the same machine (a block whose ports are
//! taken is skipped).
//!
//! A stack uses `base..base + BLOCK` (databases, Kafka, Redis and up to 99
//! replicas per service; `harness::stack::config`), and its gateway listens on
//! `base + 80`. Blocks lie below the kernel's ephemeral range (32768 and up by
//! default), where outgoing connections could already hold a port, and clear
//! of the fixed ports `harness/scripts/test.sh` and the benchmark use
//! ([`RESERVED`]). A block is held through an exclusive `flock` on a file of
//! its own in one directory for the whole machine (so test runs of two
//! checkouts share it), which the kernel drops when the holder exits however
//! it exits: a crashed test leaves no stale reservation.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};

/// Ports per block.
const BLOCK: u16 = 400;
/// The first block's first port.
const FIRST: u16 = 20_000;
/// Blocks between [`FIRST`] and the ephemeral range.
const BLOCKS: u16 = (32_768 - FIRST) / BLOCK;
/// Ports other stacks take without asking: test.sh's compare (26000, its
/// gateway 26500) and infrastructure (28000), the benchmark's stack (26000),
/// a developer's compare (27000).
const RESERVED: std::ops::Range<u16> = 26_000..28_400;
/// Where the locks live.
const LOCK_DIR: &str = "/tmp/saga2pc-port-blocks";

/// A block of ports, held until dropped.
#[derive(Debug)]
pub struct PortBlock {
    /// The block's first port (`--port-base`).
    pub base: u16,
    _lock: Flock<File>,
}

impl PortBlock {
    /// The gateway's port (`--gateway-port`).
    pub fn gateway(&self) -> u16 {
        self.base + 80
    }
}

/// A free block: the first one no other holder has locked and whose ports a
/// stack would bind are free right now.
///
/// # Panics
/// When every block is taken.
pub fn block() -> PortBlock {
    let dir = PathBuf::from(LOCK_DIR);
    std::fs::create_dir_all(&dir).expect("creating the port-block directory");
    for i in 0..BLOCKS {
        let base = FIRST + i * BLOCK;
        if RESERVED.contains(&base) || RESERVED.contains(&(base + BLOCK - 1)) {
            continue;
        }
        let file = File::create(dir.join(format!("{base}.lock"))).expect("creating a port-block lock file");
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else { continue };
        if bindable(base) {
            return PortBlock { base, _lock: lock };
        }
    }
    panic!("no free port block between {FIRST} and {}", FIRST + BLOCKS * BLOCK);
}

/// Whether the ports a one-replica stack binds in the block at `base` are free.
fn bindable(base: u16) -> bool {
    let used = [1, 2, 3, 10, 11, 20, 80, 100, 200, 300];
    used.iter().all(|offset| TcpListener::bind(("127.0.0.1", base + offset)).is_ok())
}
