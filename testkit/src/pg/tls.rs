//! TLS material for a throwaway cluster: a CA and a server certificate for `localhost` and
//! `127.0.0.1`, made with `openssl`.

use std::path::Path;
use std::process::Command;

use super::{HarnessError, PgCluster, fail, run};

impl PgCluster {
    /// A throwaway CA and a server certificate for localhost / 127.0.0.1, via openssl.
    pub(super) fn tls_files(&self) -> Result<(), HarnessError> {
        write(&self.dir)
    }
}

/// Writes `ca.crt`, `server.crt` and `server.key` (mode 600) into `dir`: a throwaway CA and a
/// server certificate for localhost / 127.0.0.1, via openssl (the MariaDB harness uses them
/// too).
pub(crate) fn write(dir: &Path) -> Result<(), HarnessError> {
    {
        let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let openssl = |args: &[&str], what: &str| {
            run(Command::new("openssl").args(args).current_dir(dir), what)
                .map_err(|e| fail(format!("{e} (is the `openssl` package installed?)")))
        };
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &d("ca.key"),
                "-out",
                &d("ca.crt"),
                "-days",
                "2",
                "-subj",
                "/CN=mesa test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            "openssl: CA",
        )?;
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &d("server.key"),
                "-out",
                &d("server.csr"),
                "-subj",
                "/CN=localhost",
            ],
            "openssl: server key",
        )?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| fail(format!("cannot write server.ext: {e}")))?;
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &d("server.csr"),
                "-CA",
                &d("ca.crt"),
                "-CAkey",
                &d("ca.key"),
                "-CAcreateserial",
                "-out",
                &d("server.crt"),
                "-days",
                "2",
                "-extfile",
                &d("server.ext"),
            ],
            "openssl: sign server certificate",
        )?;
        // PostgreSQL refuses a key readable by others.
        run(
            Command::new("chmod").args(["600", &d("server.key")]),
            "chmod server.key",
        )?;
        Ok(())
    }
}
