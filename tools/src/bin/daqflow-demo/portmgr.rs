//! The demo's own port manager: a real `daqportmgr` process on a port the system picks,
//! with its state files in a temporary directory, stopped with SIGTERM at the end.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

impl Daemon {
    pub fn start() -> Result<Daemon, String> {
        let dir = std::env::temp_dir().join(format!("daqflow-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("daqportmgr");
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let child = Command::new(&exe)
            .args(["-listen", "0", "-portfile", &file("listen.port"), "-pidfile", &file("daqportmgr.pid")])
            .args(["-log", &file("portmanager.log")])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let mut daemon = Daemon { child, dir, port: 0 };
        let deadline = Instant::now() + Duration::from_secs(10);
        while daemon.port == 0 {
            if let Ok(text) = std::fs::read_to_string(daemon.dir.join("listen.port")) {
                daemon.port = text.trim().parse().unwrap_or(0);
            }
            if Instant::now() > deadline {
                return Err("daqportmgr did not write its listen.port within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(daemon)
    }

    pub fn port_file(&self) -> PathBuf {
        self.dir.join("listen.port")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::SIGTERM);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
