//! A listening socket handed down by the process's supervisor, as systemd's
//! socket activation does: the supervisor binds the port once and every
//! incarnation of the service inherits the same socket. Connections made
//! while a killed service restarts wait in the socket's backlog and are
//! answered by the next incarnation, instead of being refused.

use std::net::TcpListener;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Environment variable holding the inherited socket's descriptor number.
pub const ENV: &str = "SAGA2PC_LISTEN_FD";

/// The descriptor a supervisor puts the socket on: the first after stdin,
/// stdout and stderr.
pub const FD: RawFd = 3;

static TAKEN: AtomicBool = AtomicBool::new(false);

/// The inherited listening socket, if [`ENV`] names one; `None` after the
/// first call, so the socket is taken once.
///
/// The descriptor is duplicated and the duplicate checked to be a socket
/// before it is used, so a stray [`ENV`] in the environment of a process that
/// got no such descriptor fails cleanly instead of taking over (and later
/// closing) whatever descriptor has that number.
///
/// # Errors
/// When [`ENV`] is set but is not a descriptor number, or the descriptor is
/// not an open socket.
pub fn inherited() -> std::io::Result<Option<TcpListener>> {
    let Some(value) = std::env::var_os(ENV) else { return Ok(None) };
    let fd: RawFd = value.to_str().and_then(|v| v.parse().ok()).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{ENV}={value:?} is not a descriptor"))
    })?;
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    // SAFETY: only borrowed for the duplication below; a descriptor that is
    // not open makes the duplication fail (EBADF), nothing else.
    #[allow(unsafe_code, reason = "borrowing an inherited descriptor by number has no safe form")]
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let listener = TcpListener::from(borrowed.try_clone_to_owned()?);
    listener.local_addr()?; // ENOTSOCK unless it is a socket
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}
