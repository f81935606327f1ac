//! `stack-certs <dir>`: writes the local stack's TLS material into `<dir>` (mode 0700), each
//! file 0600, replacing what an earlier `make up` left: `ca.pem ca.key` (a new per-stack CA),
//! `server.pem server.key` (the broker's certificate for 127.0.0.1 and localhost) and
//! `backend.pem backend.key` (the backend identity's client certificate, CN `backend`).
//! See `testkit::certs`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: stack-certs <dir>  (writes ca, server and backend certificates there)");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    match testkit::certs::write_stack(&dir) {
        Ok(files) => {
            println!(
                "stack-certs: wrote {} (CA), {} (server 127.0.0.1, localhost), {} (client CN {})",
                files.ca_cert.display(),
                files.server_cert.display(),
                files.backend_cert.display(),
                testkit::certs::BACKEND_IDENTITY
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stack-certs: cannot write {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
