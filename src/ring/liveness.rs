//! Is the process that claimed a slot still alive? NSCLDAQ relies on its RingMaster
//! daemon to free the slots of dead clients; daqflow checks the pid itself so that no
//! daemon is needed.

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// True unless `pid` certainly names no process. EPERM means it exists under another
/// user. (A pid from another pid namespace that shares /dev/shm cannot be checked; such
/// setups must not mix namespaces on one ring.)
pub fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

pub fn my_pid() -> i32 {
    std::process::id() as i32
}
