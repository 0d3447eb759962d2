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
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH)) && !zombie(pid)
}

/// A killed process whose parent has not reaped it yet still answers `kill(pid, 0)`,
/// but it will never touch the ring again (and its pid cannot be reused meanwhile).
/// Its parent may be the very producer blocked waiting for it.
fn zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // "pid (comm) S ...": comm may itself contain spaces and parentheses.
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].trim_start().chars().next());
    matches!(state, Some('Z' | 'X' | 'x'))
}

pub fn my_pid() -> i32 {
    std::process::id() as i32
}
