//! A streaming standby of a [`PgCluster`]: `pg_basebackup -R` when the distribution's client
//! is of the server's major, else (another major from [`super::dist`]) a copy taken between
//! the server's own backup start and stop functions, which is what `pg_basebackup` does over
//! the replication protocol. (Debian's `pg_basebackup` refuses newer servers, and the
//! `primary_conninfo` it writes names options, such as `sslsni`, an older server's walreceiver
//! does not know.)

use std::path::Path;
use std::process::Command;

use super::{HarnessError, PgCluster, fail, fresh_dir, major_of, reserve_port, run};

impl PgCluster {
    /// A hot standby of this cluster, streaming through the physical replication slot
    /// `slot` (created with the base backup), started on its own reserved port, with
    /// `hot_standby_feedback` (so the slot holds an xmin) reported every second. It shares
    /// the primary's roles and password; it is stopped and removed when dropped (or by its
    /// watchdog when the process exits).
    pub fn standby(&self, slot: &str) -> Result<PgCluster, HarnessError> {
        let reserved = reserve_port()?;
        let standby = Self {
            dir: fresh_dir(self.dir.parent().unwrap_or(&self.dir))?,
            bindir: self.bindir.clone(),
            client_bindir: self.client_bindir.clone(),
            major: self.major,
            port: reserved.port(),
            _port: reserved,
            password: self.password.clone(),
            as_postgres: self.as_postgres,
            remove_on_stop: self.remove_on_stop,
        };
        standby.chown_to_postgres()?;
        if major_of(&self.client_bindir, "pg_basebackup")? == self.major {
            self.base_backup(&standby, slot)?;
        } else {
            self.copy_backup(&standby, slot)?;
        }
        // The copied postgresql.conf is the primary's: the last lines win.
        let conf_path = standby.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path)
            .map_err(|e| fail(format!("cannot read {}: {e}", conf_path.display())))?;
        text.push_str(&format!(
            "\n# mesa test harness: standby\nport = {}\nunix_socket_directories = '{}'\nhot_standby = on\nhot_standby_feedback = on\nwal_receiver_status_interval = 1s\n",
            standby.port,
            standby.dir.display()
        ));
        std::fs::write(&conf_path, text)
            .map_err(|e| fail(format!("cannot write {}: {e}", conf_path.display())))?;
        standby.watchdog()?;
        standby.pg_ctl_start()?;
        Ok(standby)
    }

    /// `pg_basebackup -R -C -S slot` into the standby's data folder.
    fn base_backup(&self, standby: &PgCluster, slot: &str) -> Result<(), HarnessError> {
        run(
            &mut self.client_of(
                standby,
                "pg_basebackup",
                &[
                    "-D",
                    &standby.data_dir_str(),
                    "-R",
                    "-X",
                    "stream",
                    "-C",
                    "-S",
                    slot,
                    // An immediate checkpoint: a spread one can take minutes.
                    "--checkpoint=fast",
                    "--no-sync",
                ],
            ),
            "pg_basebackup",
        )?;
        Ok(())
    }

    /// The distribution's client `program` (run in the standby's folder, as the `postgres`
    /// OS user when root), logged in to this server as the superuser without TLS.
    fn client_of(&self, standby: &PgCluster, program: &str, args: &[&str]) -> Command {
        let port = self.port.to_string();
        let login = ["-h", self.host(), "-p", &port, "-U", "postgres"];
        let all: Vec<&str> = login.iter().chain(args).copied().collect();
        let mut cmd = standby.command_from(&self.client_bindir, program, &all);
        cmd.env("PGPASSWORD", &self.password)
            .env("PGSSLMODE", "disable");
        cmd
    }

    /// The slot, then a file copy of the data folder between `pg_backup_start` and
    /// `pg_backup_stop` in one `psql` session (its `\!` runs the copy), the backup label the
    /// server returns, and the standby's connection settings. WAL comes by streaming from the
    /// slot, which holds it from before the backup started.
    fn copy_backup(&self, standby: &PgCluster, slot: &str) -> Result<(), HarnessError> {
        let (from, to) = (self.data_dir(), standby.data_dir());
        let quoted = |p: &Path| format!("'{}'", p.display());
        // 15 renamed the non-exclusive backup functions.
        let (start, stop) = if self.major >= 15 {
            (
                "pg_backup_start('mesa standby', true)",
                "pg_backup_stop(true)",
            )
        } else {
            (
                "pg_start_backup('mesa standby', true, false)",
                "pg_stop_backup(false, true)",
            )
        };
        let script = format!(
            "SELECT pg_catalog.pg_create_physical_replication_slot('{slot}', true);\n\
             SELECT pg_catalog.{start};\n\
             \\! cp -a {from}/. {to}/ && rm -f {to}/postmaster.pid {to}/postmaster.opts && rm -rf {to}/pg_wal/* && touch {to}/standby.signal\n\
             SELECT labelfile FROM pg_catalog.{stop} \\g {label}\n",
            from = quoted(&from),
            to = quoted(&to),
            label = quoted(&to.join("backup_label")),
        );
        let script_path = standby.dir.join("backup.sql");
        std::fs::write(&script_path, script)
            .map_err(|e| fail(format!("cannot write {}: {e}", script_path.display())))?;
        standby.chown_to_postgres()?;
        run(
            &mut self.client_of(
                standby,
                "psql",
                &[
                    "-X",
                    "-q",
                    "-At",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    "postgres",
                    "-f",
                    &script_path.to_string_lossy(),
                ],
            ),
            "the standby's base backup (pg_backup_start, copy, pg_backup_stop)",
        )?;
        let auto = to.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
        text.push_str(&format!(
            "primary_conninfo = 'host={} port={} user=postgres password={} sslmode=disable'\nprimary_slot_name = '{slot}'\n",
            self.host(),
            self.port,
            self.password
        ));
        std::fs::write(&auto, text)
            .map_err(|e| fail(format!("cannot write {}: {e}", auto.display())))?;
        Ok(())
    }
}
