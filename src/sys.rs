//! The library's system calls that neither std nor nix wrap safely, each behind a safe
//! function: the resolver with canonical names and reverse lookups, where the library
//! was loaded from, a terminal's width, and starting a detached program from inside a
//! user's process. The ring core keeps its own (`ring::mem`, `ring::truncation`,
//! `ring::futex`), and so does the C ABI (`ffi`).

use std::ffi::{CStr, CString, OsStr, c_void};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::socket::{SockaddrLike, SockaddrStorage};

use crate::error::{Error, Result};

/// What the system resolver says of `host`: its canonical name (when it gives one) and
/// its addresses (each once, in the resolver's order). Err: the resolver's reason.
pub fn getaddrinfo(host: &CStr) -> std::result::Result<(Option<String>, Vec<IpAddr>), String> {
    let hints = libc::addrinfo {
        ai_flags: libc::AI_CANONNAME,
        ai_family: libc::AF_UNSPEC,
        ai_socktype: libc::SOCK_STREAM,
        ai_protocol: 0,
        ai_addrlen: 0,
        ai_addr: std::ptr::null_mut(),
        ai_canonname: std::ptr::null_mut(),
        ai_next: std::ptr::null_mut(),
    };
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `host` is NUL-terminated, the service may be NULL, the hints are a complete
    // value that outlives the call, and `list` is a valid out-pointer.
    let rc = unsafe { libc::getaddrinfo(host.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if rc != 0 {
        // SAFETY: gai_strerror returns a NUL-terminated static string for any code.
        return Err(unsafe { CStr::from_ptr(libc::gai_strerror(rc)) }.to_string_lossy().into_owned());
    }
    let mut canonical = None;
    let mut addresses = Vec::new();
    let mut node = list;
    while !node.is_null() {
        // SAFETY: a node of the list getaddrinfo returned, alive until freeaddrinfo below
        // and read only.
        let info = unsafe { &*node };
        if canonical.is_none() && !info.ai_canonname.is_null() {
            // SAFETY: getaddrinfo's canonical name is a NUL-terminated string in the list.
            canonical = Some(unsafe { CStr::from_ptr(info.ai_canonname) }.to_string_lossy().into_owned());
        }
        // SAFETY: getaddrinfo's `ai_addr` is NULL or a socket address of `ai_addrlen`
        // bytes; from_raw checks the family against the length.
        let addr = unsafe { SockaddrStorage::from_raw(info.ai_addr, Some(info.ai_addrlen)) };
        if let Some(ip) = addr.and_then(|a| ip_of(&a)) {
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
        node = info.ai_next;
    }
    // SAFETY: the list came from getaddrinfo, nothing borrowed from it is kept, and it is
    // freed once.
    unsafe { libc::freeaddrinfo(list) };
    Ok((canonical, addresses))
}

/// The IP address of an IPv4 or IPv6 socket address.
pub fn ip_of(addr: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        Some(IpAddr::V4(v4.ip()))
    } else {
        addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
    }
}

/// The name the resolver gives an address, if it knows one.
pub fn getnameinfo(ip: IpAddr) -> Option<String> {
    let storage = SockaddrStorage::from(std::net::SocketAddr::new(ip, 0));
    let mut name = [0u8; libc::NI_MAXHOST as usize];
    // SAFETY: a socket address and its own length; a writable buffer and its length; no
    // service buffer (NULL with length 0).
    let rc = unsafe {
        libc::getnameinfo(
            storage.as_ptr(),
            storage.len(),
            name.as_mut_ptr().cast(),
            name.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // NUL-terminated by getnameinfo; looked for within the buffer all the same.
    CStr::from_bytes_until_nul(&name).ok().map(|name| name.to_string_lossy().into_owned())
}

/// The file this code was loaded from (libdaqflow.so, or the program it is linked into),
/// as the dynamic loader knows it.
pub fn loaded_from() -> Option<PathBuf> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: the address is one of our own functions and `info` a valid out-parameter.
    let rc = unsafe { libc::dladdr(loaded_from as *const c_void, &mut info) };
    if rc == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr's file name is a NUL-terminated string owned by the loader, which
    // keeps it while our own object is loaded; we copy it at once.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(OsStr::from_bytes(name.to_bytes())))
}

/// The width of the terminal on `fd`, if it is one that knows its width.
pub fn terminal_columns(fd: BorrowedFd<'_>) -> Option<u16> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which is valid for it;
    // on a descriptor that is no terminal it fails without writing.
    let ok = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(ws.ws_col)
}

/// Runs `argv` (its first element the program's path) as a grandchild in a session of
/// its own, adopted by init (or the nearest subreaper), so the caller, which may be a
/// multi-threaded program that reaps children its own way, is left with neither a child
/// nor a zombie. The program gets `env` (`NAME=value`) as its environment, `fds` as its
/// descriptors 0 to 3 and no other, every signal unblocked and at its default; if it
/// cannot be executed, `exec_failed` is written to its descriptor 3. Returns once the intermediate child is reaped.
pub fn spawn_orphan(argv: &[CString], env: &[CString], fds: [BorrowedFd<'_>; 4], exec_failed: &[u8]) -> Result<()> {
    let path = argv.first().ok_or_else(|| Error::new(libc::EINVAL, "no program to start"))?;
    let mut pointers: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    let mut environment: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    environment.push(std::ptr::null());
    // Above every descriptor the child will overwrite, so no dup2 clobbers a source and
    // none is a dup2 onto itself (which would keep its close-on-exec flag).
    let high = |fd: BorrowedFd<'_>| -> Result<OwnedFd> {
        let new = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))
            .map_err(|e| Error::sys(e, "cannot duplicate a descriptor for the feeder"))?;
        // SAFETY: F_DUPFD_CLOEXEC just made this descriptor; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(new) })
    };
    let owned = [high(fds[0])?, high(fds[1])?, high(fds[2])?, high(fds[3])?];
    let raw = owned.each_ref().map(|fd| fd.as_raw_fd());
    // Read before forking: getrlimit is not async-signal-safe.
    let max_fd = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft.min(65536) as RawFd);

    // SAFETY: the child calls only async-signal-safe functions (middle_child), on data
    // prepared above and not freed before it execs or exits; the parent goes on as usual.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::sys(Errno::last(), "cannot fork to start the feeder"));
    }
    if pid == 0 {
        // SAFETY: in the child of a fork, with NUL-terminated strings and NULL-ended
        // argument and environment vectors that live until exec.
        unsafe { middle_child(&raw, max_fd, path.as_ptr(), pointers.as_ptr(), environment.as_ptr(), exec_failed) }
    }
    drop(owned);
    reap(nix::unistd::Pid::from_raw(pid));
    Ok(())
}

/// The intermediate child: new session, fork the program, exit.
///
/// # Safety
/// Only in the child of a fork; `path`, `argv` and `envp` as execve wants them.
unsafe fn middle_child(
    fds: &[RawFd; 4],
    max_fd: RawFd,
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    exec_failed: &[u8],
) -> ! {
    // SAFETY: every call is async-signal-safe (fork's child may call nothing else) and
    // passes only descriptors, integers, and pointers to data that outlives the call
    // (this stack frame's or the caller's, valid until exec per our contract).
    unsafe {
        libc::setsid();
        let pid = libc::fork();
        if pid != 0 {
            libc::_exit(if pid < 0 { 1 } else { 0 });
        }
        for (target, &fd) in fds.iter().enumerate() {
            if libc::dup2(fd, target as RawFd) < 0 {
                libc::_exit(126);
            }
        }
        // Nothing else of the user's process (sockets, files, pipes) goes with us.
        let last = (fds.len() - 1) as RawFd;
        if libc::syscall(libc::SYS_close_range, (last + 1) as libc::c_uint, libc::c_uint::MAX, 0 as libc::c_uint) != 0 {
            // Kernels before 5.9: one by one.
            for fd in last + 1..max_fd {
                libc::close(fd);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGCHLD, libc::SIGPIPE] {
            libc::sigaction(sig, &default, std::ptr::null_mut());
        }
        libc::execve(path, argv, envp);
        libc::write(last, exec_failed.as_ptr().cast(), exec_failed.len());
        libc::_exit(127)
    }
}

/// This process was started with more rights than its caller (set-user-ID, set-group-ID,
/// file capabilities): the kernel's AT_SECURE, which glibc's `secure_getenv` obeys.
pub fn at_secure() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave this process; it
    // has no preconditions, and returns 0 for an entry that is not there.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Reaps the intermediate child (it exits at once). A host program that reaps every
/// child itself (SIGCHLD handler, SIG_IGN) may beat us to it: ECHILD is fine.
fn reap(pid: nix::unistd::Pid) {
    while let Err(Errno::EINTR) = nix::sys::wait::waitpid(pid, None) {}
}
