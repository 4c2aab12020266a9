//! Real database servers for the tests: PostgreSQL and MariaDB from Debian's
//! packages, each initialized in a temp dir and started on loopback on a free port,
//! stopped (fast shutdown) when dropped. As root, the server runs as the package's
//! service user (`postgres`, `mysql`), which owns the temp dir.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound and released; a race with another
/// process is possible but unlikely).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn ids_of(user: &str) -> Option<(u32, u32)> {
    let root = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&root.stdout).trim() != "0" {
        return None;
    }
    let q = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    Some((q("-u")?, q("-g")?))
}

/// Runs `cmd` as `user` when this process is root.
fn as_user(cmd: &mut Command, ids: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn chown_all(dir: &Path, ids: Option<(u32, u32)>) {
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown temp dir");
    }
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_until(what: &str, child: &mut Child, log: &Path, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not start in 60 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(child: &mut Child, signal: &str) {
    let _ = Command::new("kill").args([signal, &child.id().to_string()]).status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The newest installed PostgreSQL's binaries (`/usr/lib/postgresql/N/bin`).
pub fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

/// A PostgreSQL server with a `sqlflight` superuser (password auth) and a
/// `tpch` database.
pub struct Postgres {
    pub port: u16,
    pub password: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(&[])
    }

    /// Starts a server with extra `-c name=value` settings (e.g. logging).
    pub fn start_with(settings: &[&str]) -> Postgres {
        let bin = postgres_bin().expect("PostgreSQL is not installed (scripts/test.sh installs postgresql-15)");
        let dir = tempfile::Builder::new()
            .prefix("sqlflight-pg")
            .tempdir()
            .expect("temp dir");
        let ids = ids_of("postgres");
        chown_all(dir.path(), ids);
        let password = format!("pg-secret-{}", std::process::id());
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password).expect("password file");
        chown_all(&pwfile, ids);
        let data = dir.path().join("data");
        run_checked(
            as_user(
                Command::new(bin.join("initdb"))
                    .args([
                        "-U",
                        "sqlflight",
                        "--auth=scram-sha-256",
                        "-E",
                        "UTF8",
                        "--locale=C",
                        "--no-sync",
                        "--pwfile",
                    ])
                    .arg(&pwfile)
                    .arg("-D")
                    .arg(&data),
                ids,
            ),
            "initdb",
        );
        let port = free_port();
        let log = dir.path().join("server.log");
        let logf = std::fs::File::create(&log).expect("log file");
        chown_all(&log, ids);
        let mut child = as_user(
            Command::new(bin.join("postgres"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-p",
                    &port.to_string(),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                ])
                .args(settings.iter().flat_map(|s| ["-c", s]))
                .arg("-k")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("log"))
                .stderr(logf),
            ids,
        )
        .spawn()
        .expect("start postgres");
        let pid = data.join("postmaster.pid");
        wait_until("postgres", &mut child, &log, || {
            std::fs::read_to_string(&pid).is_ok_and(|s| s.contains("ready"))
        });
        let server = Postgres {
            port,
            password,
            child,
            _dir: dir,
        };
        server.psql("postgres", "CREATE DATABASE tpch");
        server
    }

    /// The server's temp directory (data, socket, logs), owned by its user.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// A connection URL with the password in it.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://sqlflight:{}@127.0.0.1:{}/{db}", self.password, self.port)
    }

    /// Runs SQL with Debian's `psql` client.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .env("PGPASSWORD", &self.password)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "sqlflight",
                "-d",
                db,
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop(&mut self.child, "-INT");
    }
}

/// A MariaDB server with a `sqlflight` user (password) owning a `tpch` database.
pub struct Mariadb {
    pub port: u16,
    pub password: String,
    socket: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Mariadb {
    pub fn start() -> Mariadb {
        Mariadb::start_with(&[])
    }

    /// Starts a server with extra `--name=value` options (e.g. logging).
    pub fn start_with(options: &[&str]) -> Mariadb {
        let dir = tempfile::Builder::new()
            .prefix("sqlflight-maria")
            .tempdir()
            .expect("temp dir");
        // A temp dir of its own: servers set up at once otherwise share /tmp for
        // their temporary tables, and one's cleanup can break another's install.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).expect("server temp dir");
        let ids = ids_of("mysql");
        chown_all(dir.path(), ids);
        chown_all(&tmp, ids);
        let data = dir.path().join("data");
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if ids.is_some() {
            install.arg("--user=mysql");
        }
        run_checked(
            &mut install,
            "mariadb-install-db (scripts/test.sh installs mariadb-server)",
        );
        let port = free_port();
        let socket = dir.path().join("mysqld.sock");
        let log = dir.path().join("server.log");
        let logf = std::fs::File::create(&log).expect("log file");
        chown_all(&log, ids);
        let child = as_user(
            Command::new("mariadbd")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--tmpdir={}", tmp.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--pid-file={}", dir.path().join("mysqld.pid").display()))
                .arg(format!("--port={port}"))
                .args([
                    "--bind-address=127.0.0.1",
                    "--skip-name-resolve",
                    "--innodb-flush-log-at-trx-commit=0",
                ])
                .arg("--innodb-buffer-pool-size=64M")
                .args(options)
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("log"))
                .stderr(logf),
            ids,
        )
        .spawn()
        .expect("start mariadbd");
        let password = format!("maria-secret-{}", std::process::id());
        let mut server = Mariadb {
            port,
            password,
            socket,
            child,
            _dir: dir,
        };
        let socket = server.socket.clone();
        wait_until("mariadbd", &mut server.child, &log, || {
            socket.exists()
                && Command::new("mariadb")
                    .arg(format!("--socket={}", socket.display()))
                    .args(["-u", "root", "-e", "SELECT 1"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
        let pw = server.password.clone();
        server.root_sql(&format!(
            "CREATE DATABASE tpch; CREATE USER 'sqlflight'@'%' IDENTIFIED BY '{pw}'; \
             GRANT ALL ON *.* TO 'sqlflight'@'%'"
        ));
        server
    }

    /// The server's temp directory (data, socket, logs), owned by its user.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    pub fn url(&self, db: &str) -> String {
        format!("mysql://sqlflight:{}@127.0.0.1:{}/{db}", self.password, self.port)
    }

    /// Runs SQL as root over the socket with Debian's `mariadb` client.
    pub fn root_sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-u", "root", "-N", "-B", "-e", sql])
            .output()
            .expect("run mariadb");
        assert!(
            out.status.success(),
            "mariadb {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        stop(&mut self.child, "-TERM");
    }
}
