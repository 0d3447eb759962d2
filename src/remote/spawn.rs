//! Starting a feeder from inside a user's process, which may be multi-threaded, may
//! reap children of its own, and must not be left with a zombie.
//!
//! Double fork: the intermediate child starts a new session, forks the feeder and exits
//! at once, so the feeder is adopted by init (or the nearest subreaper) and our only
//! child is reaped right here. Everything is prepared before the first fork; between
//! fork and exec only async-signal-safe calls are made. The feeder reports back on a
//! pipe: started, already running, or why it could not start.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::feeder::{Plan, READY_BUSY, READY_ERROR, READY_OK, STEP_TIMEOUT};
use crate::error::{Error, Result};

/// Environment variable naming the feeder program to run instead of the installed one.
pub const FEEDER_ENV: &str = "DAQFLOW_FEEDER";
/// Environment variable naming a file feeders append their diagnostics to (default:
/// none, so a feeder never holds a user's terminal or pipe open).
pub const FEEDER_LOG_ENV: &str = "DAQFLOW_FEEDER_LOG";
/// The feeder's file name.
pub const FEEDER_NAME: &str = "daqflow-feeder";
/// The descriptor the feeder finds its report pipe on (the last `sys::spawn_orphan` hands over).
const READY_FD: RawFd = 3;
/// How long to wait for the feeder's report: its own steps are time-boxed to less.
pub const READY_WAIT: Duration = Duration::from_secs(4 * STEP_TIMEOUT.as_secs());

/// Where the feeder program is: `$DAQFLOW_FEEDER`, else next to the library (or the
/// program) this code is linked into: `<dir>/daqflow-feeder` (build tree),
/// `<dir>/daqflow/daqflow-feeder` (installed: `$(LIBDIR)/daqflow/`), `<dir>/../daqflow-feeder`
/// (test programs in target/release/deps).
pub fn feeder_path() -> Result<PathBuf> {
    if let Some(path) = crate::environ::var_os(FEEDER_ENV) {
        return Ok(PathBuf::from(path));
    }
    let here = loaded_from()?;
    let dir = here.parent().unwrap_or(Path::new("/"));
    let candidates = [dir.join(FEEDER_NAME), dir.join("daqflow").join(FEEDER_NAME), dir.join("..").join(FEEDER_NAME)];
    candidates.iter().find(|p| executable(p)).cloned().ok_or_else(|| {
        Error::new(
            libc::ENOENT,
            format!(
                "cannot find the feeder program {FEEDER_NAME} near {} (looked in {}); install it or set {FEEDER_ENV}",
                here.display(),
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

fn executable(path: &Path) -> bool {
    path.is_file() && nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// The file this code was loaded from (libdaqflow.so, or a program it is linked into).
fn loaded_from() -> Result<PathBuf> {
    let Some(path) = crate::sys::loaded_from() else {
        return std::env::current_exe().map_err(|e| Error::io(&e, "cannot tell where daqflow was loaded from"));
    };
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}

/// What a feeder said when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// It is feeding the proxy now.
    Feeding,
    /// Another feeder already was.
    AlreadyFed,
}

/// Starts a feeder for `plan` and waits for its report.
pub fn start_feeder(plan: &Plan) -> Result<Started> {
    let mut launched = launch(plan)?;
    read_report(&mut launched.report, &launched.program)
}

/// A feeder started and not yet heard from.
pub struct Launched {
    /// Where it reports (one line, then end of file).
    pub report: File,
    pub program: PathBuf,
}

/// Starts a feeder for `plan` without waiting for its report.
pub fn launch(plan: &Plan) -> Result<Launched> {
    let program = feeder_path()?;
    let c =
        |s: &[u8], what: &str| CString::new(s).map_err(|_| Error::new(libc::EINVAL, format!("{what} contains a NUL")));
    let path = c(program.as_os_str().as_bytes(), "the feeder path")?;
    let mut args = vec![path, c(b"--ready-fd", "")?, c(READY_FD.to_string().as_bytes(), "")?];
    if let Some(port) = plan.portmgr_port {
        args.push(c(b"--portmgr-port", "")?);
        args.push(c(port.to_string().as_bytes(), "")?);
    }
    // The host comes from a URL and the resolver: it may look like a switch.
    args.push(c(b"--", "")?);
    args.push(c(plan.host.as_bytes(), "the host")?);
    args.push(c(plan.ring.as_bytes(), "the ring")?);
    args.push(c(plan.proxy.as_bytes(), "the proxy ring")?);

    let (report, ready) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys(e, "cannot make a pipe for the feeder"))?;
    let null =
        File::options().read(true).write(true).open("/dev/null").map_err(|e| Error::io(&e, "cannot open /dev/null"))?;
    let log = match crate::environ::var_os(FEEDER_LOG_ENV) {
        Some(p) => File::options()
            .append(true)
            .create(true)
            .open(&p)
            .map_err(|e| Error::io(&e, format!("cannot open feeder log {}", p.to_string_lossy())))?,
        None => null.try_clone().map_err(|e| Error::io(&e, "cannot duplicate /dev/null"))?,
    };
    let exec_failed = b"ERROR 2 the feeder program could not be executed\n";
    // A set-user-ID caller's variables are its caller's: the feeder does not get them.
    let env = crate::environ::for_child();
    crate::sys::spawn_orphan(&args, &env, [null.as_fd(), null.as_fd(), log.as_fd(), ready.as_fd()], exec_failed)?;
    drop((null, log, ready));
    Ok(Launched { report: File::from(report), program })
}

fn read_report(pipe: &mut File, program: &Path) -> Result<Started> {
    let deadline = Instant::now() + READY_WAIT;
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while !got.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::new(
                libc::ETIMEDOUT,
                format!("the feeder {} did not report within {} s", program.display(), READY_WAIT.as_secs()),
            ));
        }
        let mut poll = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        let wait = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        if !matches!(nix::poll::poll(&mut poll, wait), Ok(n) if n > 0) {
            continue;
        }
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(&e, "reading the feeder's report")),
        }
    }
    let line = String::from_utf8_lossy(&got);
    let line = line.lines().next().unwrap_or("");
    let mut words = line.splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some(READY_OK), _, _) => Ok(Started::Feeding),
        (Some(READY_BUSY), _, _) => Ok(Started::AlreadyFed),
        (Some(READY_ERROR), Some(errno), message) => {
            let errno = errno.parse().unwrap_or(libc::EIO);
            Err(Error::new(errno, format!("the feeder could not start: {}", message.unwrap_or("no reason given"))))
        }
        _ => {
            Err(Error::new(libc::EIO, format!("the feeder {} stopped without a report ({line:?})", program.display())))
        }
    }
}
