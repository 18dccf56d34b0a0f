//! SQLite file locks that hold against another SQLite copy in the same process.
//!
//! This addon links its own SQLite, and a kavachOS host on `sqlite-native`
//! links another (better-sqlite3's). SQLite locks with POSIX record locks,
//! which belong to the process: two copies in one process do not see each
//! other's locks, and closing a connection in one copy releases the other's.
//! Writers then overlap and a closing host connection resets the WAL under us.
//!
//! On Linux, open-file-description (OFD) locks conflict with POSIX locks even
//! within one process, and closing another descriptor does not release them.
//! So our SQLite's `fcntl` is replaced (through the unix VFS's documented
//! `xSetSystemCall` hook) by one that places OFD locks. OFD locks belong to a
//! descriptor, not a process; SQLite's in-process lock sharing assumes the
//! latter, which is why the store keeps exactly one connection per file.

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::{c_int, c_void};
    use std::sync::OnceLock;

    /// SQLite calls `fcntl(fd, cmd, arg)` with an integer or a pointer as the
    /// third argument; on Linux's x86-64 and AArch64 calling conventions a
    /// variadic call passes it in the same register as this fixed parameter.
    unsafe extern "C" fn ofd_fcntl(fd: c_int, cmd: c_int, arg: *mut c_void) -> c_int {
        let ofd_cmd = match cmd {
            libc::F_SETLK => libc::F_OFD_SETLK,
            libc::F_SETLKW => libc::F_OFD_SETLKW,
            libc::F_GETLK => libc::F_OFD_GETLK,
            other => return unsafe { libc::fcntl(fd, other, arg) },
        };
        let lock = arg.cast::<libc::flock>();
        if !lock.is_null() {
            // OFD requests must carry l_pid 0 (SQLite leaves it unset).
            unsafe { (*lock).l_pid = 0 };
        }
        unsafe { libc::fcntl(fd, ofd_cmd, lock) }
    }

    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

    pub fn install() -> Result<(), String> {
        INSTALLED
            .get_or_init(|| unsafe {
                let vfs = libsqlite3_sys::sqlite3_vfs_find(c"unix".as_ptr());
                if vfs.is_null() {
                    return Err("SQLite's unix VFS is missing".into());
                }
                let Some(set_system_call) = (*vfs).xSetSystemCall else {
                    return Err("SQLite's unix VFS cannot replace system calls".into());
                };
                let replacement: unsafe extern "C" fn(c_int, c_int, *mut c_void) -> c_int =
                    ofd_fcntl;
                let pointer: libsqlite3_sys::sqlite3_syscall_ptr =
                    Some(std::mem::transmute::<
                        unsafe extern "C" fn(c_int, c_int, *mut c_void) -> c_int,
                        unsafe extern "C" fn(),
                    >(replacement));
                match set_system_call(vfs, c"fcntl".as_ptr(), pointer) {
                    libsqlite3_sys::SQLITE_OK => Ok(()),
                    code => Err(format!(
                        "SQLite refused the fcntl replacement (code {code})"
                    )),
                }
            })
            .clone()
    }
}

/// Whether a SQLite file can be shared with a host's SQLite copy in this
/// process: Linux through the OFD shim, Windows because its file locks belong to
/// a handle. Elsewhere (macOS, the BSDs) POSIX locks leak between the copies.
pub const SHARES_FILE_WITH_HOST_SAFELY: bool = cfg!(any(target_os = "linux", windows));

/// Installs the OFD lock shim once, before the first SQLite file is opened.
/// Elsewhere there are no OFD locks: see `SHARES_FILE_WITH_HOST_SAFELY`.
pub fn install_process_safe_locks() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        linux::install()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(())
    }
}
