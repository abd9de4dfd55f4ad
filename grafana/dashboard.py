"""Builds grafana/dashboards/mesa.json, Mesa's Grafana dashboard, as code.

Run it with Grafana's grafana-foundation-sdk (pinned in grafana/requirements.txt):

    python3 grafana/dashboard.py > grafana/dashboards/mesa.json

CI runs it and fails when the committed JSON differs, so edit this file, not the JSON.
Every query uses `$datasource` and `$server` (the targets of both drivers, from `pg_up` and
`mysql_up`), which the `/metrics` scrape pattern labels each database with; the per-database
row also `$datname` (the databases discovery visits, from `mesa_database_up`). The MySQL row
reads mysqld_exporter's names, which Mesa serves for MySQL and MariaDB targets. tests/it/dashboard.rs evaluates every
query against a live Prometheus.
"""

import json
import sys

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prom_model

DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
SERVER = 'server=~"$server"'
# Per-database panels also filter on the visited databases (`$datname`).
DB = 'server=~"$server", datname=~"$datname"'
# Shared by the alert rules (deploy/prometheus/alerts.yml) and these panels' colours.
SATURATION_WARNING = 0.8
SATURATION_CRITICAL = 0.95

_next_id = 0


def _id() -> int:
    global _next_id
    _next_id += 1
    return _next_id


def query(expr: str, legend: str, ref: str = "A") -> prom.Dataquery:
    return prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)


def thresholds(*steps: tuple) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in steps])
    )


def series(title: str, unit: str, *queries: prom.Dataquery, width: int = 12, description: str = "") -> timeseries.Panel:
    panel = timeseries.Panel().id(_id()).title(title).unit(unit).datasource(DS).span(width).height(8)
    if description:
        panel = panel.description(description)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def single(title: str, unit: str, q: prom.Dataquery, steps: tuple, width: int = 6, description: str = "") -> stat.Panel:
    panel = (
        stat.Panel()
        .id(_id())
        .title(title)
        .unit(unit)
        .datasource(DS)
        .span(width)
        .height(5)
        .thresholds(thresholds(*steps))
        .with_target(q)
    )
    if description:
        panel = panel.description(description)
    return panel


def build() -> db.Dashboard:
    rate = "$__rate_interval"
    d = (
        db.Dashboard("Mesa: PostgreSQL and MySQL fleet")
        .uid("mesa-postgres-fleet")
        .tags(["mesa", "postgresql", "mysql"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            db.QueryVariable("server")
            .label("Server")
            .datasource(DS)
            .query('label_values({__name__=~"pg_up|mysql_up"}, server)')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        .with_variable(
            db.QueryVariable("datname")
            .label("Database")
            .datasource(DS)
            .query('label_values(mesa_database_up{server=~"$server"}, datname)')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        .with_row(db.Row("Overview").id(_id()))
        .with_panel(single(
            "Targets up", "none",
            query(f"sum(pg_up{{{SERVER}}})", "up"),
            ((None, "red"), (1, "green")),
            description="Targets whose last collection connected and ran (pg_up).",
        ))
        .with_panel(single(
            "Targets down", "none",
            query(f"count(pg_up{{{SERVER}}} == 0) or vector(0)", "down"),
            ((None, "green"), (1, "red")),
        ))
        .with_panel(
            table.Panel().id(_id()).title("Versions").datasource(DS).span(12).height(5)
            .with_target(
                query(f"pg_static{{{SERVER}}}", "{{server}}: {{short_version}}")
                .instant()
                .format(prom_model.PromQueryFormat.TABLE)
            )
        )
        .with_panel(series(
            "Uptime", "s",
            query(f"time() - pg_postmaster_start_time_seconds{{{SERVER}}}", "{{server}}"),
        ))
        .with_panel(series(
            "Connection utilization", "percentunit",
            query(f"pg_connections_utilization_ratio{{{SERVER}}}", "{{server}}"),
            description="Client backends / (max_connections - superuser_reserved_connections); the PostgresConnectionSaturation alert fires at 80% (warning) and 95% (critical).",
        ).thresholds(thresholds((None, "green"), (SATURATION_WARNING, "orange"), (SATURATION_CRITICAL, "red")))
         .max(1).min(0))
        .with_row(db.Row("Sessions").id(_id()))
        .with_panel(series(
            "Client sessions vs usable connections", "none",
            query(f"sum by (server) (pg_stat_activity_count{{{SERVER}}})", "{{server}} sessions"),
            query(
                f"pg_settings_max_connections{{{SERVER}}} - pg_settings_superuser_reserved_connections{{{SERVER}}}",
                "{{server}} usable", "B",
            ),
        ))
        .with_panel(series(
            "Sessions by state", "none",
            query(f"sum by (state) (pg_stat_activity_count{{{SERVER}}})", "{{state}}"),
        ))
        .with_panel(series(
            "Sessions by database", "none",
            query(f"sum by (server, datname) (pg_stat_activity_count{{{SERVER}}})", "{{server}}/{{datname}}"),
        ))
        .with_panel(series(
            "Longest transaction and query", "s",
            query(f"max by (server) (pg_stat_activity_max_tx_duration{{{SERVER}}})", "{{server}} transaction"),
            query(f"max by (server) (pg_stat_activity_max_query_duration_seconds{{{SERVER}}})", "{{server}} query", "B"),
        ))
        .with_row(db.Row("Databases").id(_id()))
        .with_panel(series(
            "Database size", "bytes",
            query(f"pg_database_size_bytes{{{SERVER}}}", "{{server}}/{{datname}}"),
        ))
        .with_panel(series(
            "Transactions", "ops",
            query(f"sum by (server) (rate(pg_stat_database_xact_commit_total{{{SERVER}}}[{rate}]))", "{{server}} commits"),
            query(f"sum by (server) (rate(pg_stat_database_xact_rollback_total{{{SERVER}}}[{rate}]))", "{{server}} rollbacks", "B"),
        ))
        .with_panel(series(
            "Cache hit ratio", "percentunit",
            query(
                f"sum by (server) (rate(pg_stat_database_blks_hit_total{{{SERVER}}}[{rate}])) / "
                f"(sum by (server) (rate(pg_stat_database_blks_hit_total{{{SERVER}}}[{rate}])) + "
                f"sum by (server) (rate(pg_stat_database_blks_read_total{{{SERVER}}}[{rate}])))",
                "{{server}}",
            ),
        ))
        .with_panel(series(
            "Deadlocks", "none",
            query(f"sum by (server, datname) (increase(pg_stat_database_deadlocks_total{{{SERVER}}}[{rate}]))", "{{server}}/{{datname}}"),
        ))
        .with_panel(series(
            "Locks by mode", "none",
            query(f"sum by (mode) (pg_locks_count{{{SERVER}}})", "{{mode}}"),
        ))
        .with_panel(series(
            "Transaction ID age (wraparound)", "none",
            query(f"max by (server, datname) (pg_database_wraparound_age_datfrozenxid{{{SERVER}}})", "{{server}}/{{datname}}"),
            description="age(datfrozenxid); autovacuum freezes past autovacuum_freeze_max_age, PostgreSQL stops writes near 2 billion.",
        ))
        .with_panel(series(
            "Replica replay lag", "s",
            query(f"pg_replication_lag_seconds{{{SERVER}}}", "{{server}}"),
            description="On a replica: seconds behind its primary's last replayed transaction (0 when caught up, and on a primary).",
        ))
        .with_panel(series(
            "Standby lag behind this primary", "bytes",
            query(f"pg_stat_replication_pg_wal_lsn_diff{{{SERVER}}}", "{{server}} → {{application_name}} {{client_addr}}"),
            description="WAL each streaming standby has yet to replay; absent on a server nobody streams from.",
        ))
        .with_row(db.Row("Per database (visited by discovery)").id(_id()))
        .with_panel(single(
            "Databases not visited", "none",
            query(f"count(mesa_database_up{{{DB}}} == 0) or vector(0)", "failing"),
            ((None, "green"), (1, "red")),
            description="Visited databases whose last visit failed (mesa_database_up 0: CONNECT refused, a timeout, a dropped database); the MesaDatabaseNotVisited alert fires after 10 minutes.",
        ))
        .with_panel(series(
            "Time since each database's last visit", "s",
            query(f"time() - mesa_database_last_visit_timestamp_seconds{{{DB}}}", "{{server}}/{{datname}}"),
            width=18,
            description="Each database is visited every databases.interval, one at a time.",
        ))
        .with_panel(series(
            "Dead tuples (top 10 tables)", "none",
            query(f"topk(10, pg_stat_user_tables_n_dead_tup{{{DB}}})", "{{server}}/{{datname}} {{schemaname}}.{{relname}}"),
        ))
        .with_panel(series(
            "Sequential vs index scans", "ops",
            query(f"sum by (server, datname) (rate(pg_stat_user_tables_seq_scan_total{{{DB}}}[{rate}]))", "{{server}}/{{datname}} sequential"),
            query(f"sum by (server, datname) (rate(pg_stat_user_tables_idx_scan_total{{{DB}}}[{rate}]))", "{{server}}/{{datname}} index", "B"),
            description="Scans started on user tables; sequential scans growing against index scans often mean a missing index.",
        ))
        .with_panel(series(
            "Cache hit per database", "percentunit",
            query(
                f"sum by (server, datname) (pg_statio_user_tables_heap_blocks_hit_total{{{DB}}}) / "
                f"(sum by (server, datname) (pg_statio_user_tables_heap_blocks_hit_total{{{DB}}}) + "
                f"sum by (server, datname) (pg_statio_user_tables_heap_blocks_read_total{{{DB}}}))",
                "{{server}}/{{datname}}",
            ),
            description="Heap blocks found in shared buffers over all heap blocks read, user tables, since the statistics were reset.",
        ))
        .with_panel(
            table.Panel().id(_id()).title("Unused indexes").datasource(DS).span(12).height(8)
            .description("Indexes with no scan since the statistics were reset, largest first among those exported (max_indexes); each costs writes and space.")
            .with_target(
                query(f"pg_stat_user_indexes_idx_scan_total{{{DB}}} == 0", "{{server}}/{{datname}} {{indexrelname}}")
                .instant()
                .format(prom_model.PromQueryFormat.TABLE)
            )
        )
        .with_row(db.Row("MySQL and MariaDB").id(_id()))
        .with_panel(single(
            "MySQL targets up", "none",
            query(f"sum(mysql_up{{{SERVER}}})", "up"),
            ((None, "red"), (1, "green")),
            description="MySQL and MariaDB targets whose last collection connected and ran (mysql_up).",
        ))
        .with_panel(series(
            "MySQL connection utilization", "percentunit",
            query(f"mysql_connections_utilization_ratio{{{SERVER}}}", "{{server}}"),
            width=18,
            description="Client connections (Mesa's own excluded) / max_connections; the MysqlConnectionSaturation alert fires at 80% (warning) and 95% (critical).",
        ).thresholds(thresholds((None, "green"), (SATURATION_WARNING, "orange"), (SATURATION_CRITICAL, "red")))
         .max(1).min(0))
        .with_panel(series(
            "MySQL threads vs max_connections", "none",
            query(f"mysql_global_status_threads_connected{{{SERVER}}}", "{{server}} connected"),
            query(f"mysql_global_status_threads_running{{{SERVER}}}", "{{server}} running", "B"),
            query(f"mysql_global_variables_max_connections{{{SERVER}}}", "{{server}} max_connections", "C"),
        ))
        .with_panel(series(
            "MySQL questions per second", "ops",
            query(f"rate(mysql_global_status_questions{{{SERVER}}}[{rate}])", "{{server}}"),
            description="Statements clients sent (Questions), per second.",
        ))
        .with_panel(series(
            "MySQL slow queries and aborted connections", "ops",
            query(f"rate(mysql_global_status_slow_queries{{{SERVER}}}[{rate}])", "{{server}} slow queries"),
            query(f"rate(mysql_global_status_aborted_connects{{{SERVER}}}[{rate}])", "{{server}} aborted connects", "B"),
            query(f"rate(mysql_global_status_aborted_clients{{{SERVER}}}[{rate}])", "{{server}} aborted clients", "C"),
        ))
        .with_panel(series(
            "InnoDB buffer pool reads from disk", "percentunit",
            query(
                f"rate(mysql_global_status_innodb_buffer_pool_reads{{{SERVER}}}[{rate}]) / "
                f"clamp_min(rate(mysql_global_status_innodb_buffer_pool_read_requests{{{SERVER}}}[{rate}]), 1)",
                "{{server}}",
            ),
            description="Logical reads InnoDB had to read from disk (Innodb_buffer_pool_reads / Innodb_buffer_pool_read_requests).",
        ))
        .with_panel(series(
            "InnoDB row lock waits", "ops",
            query(f"rate(mysql_global_status_innodb_row_lock_waits{{{SERVER}}}[{rate}])", "{{server}}"),
        ))
        .with_panel(series(
            "MySQL replica lag and threads", "s",
            query(f"mysql_slave_status_seconds_behind_master{{{SERVER}}}", "{{server}} {{connection_name}} behind {{master_host}}"),
            query(
                f"mysql_slave_status_slave_io_running{{{SERVER}}} * mysql_slave_status_slave_sql_running{{{SERVER}}}",
                "{{server}} {{connection_name}} threads running (1 = both)", "B",
            ),
            description="On a replica: Seconds_Behind_Master, and whether its IO and SQL threads both run (the MysqlReplicationNotRunning alert fires when one stops).",
        ))
        .with_row(db.Row("Mesa").id(_id()))
        .with_panel(series(
            "Collection duration", "s",
            query(f"mesa_collect_duration_seconds{{{SERVER}}}", "{{server}}"),
        ))
        .with_panel(series(
            "Collection failures by reason and collector", "none",
            query(f"sum by (server, reason, collector) (increase(mesa_collect_failures_total{{{SERVER}}}[{rate}]))", "{{server}} {{collector}}: {{reason}}"),
        ))
        .with_panel(series(
            "Collectors failing", "none",
            query(f"count by (server) (mesa_collector_success{{{SERVER}}} == 0) or sum by (server) (mesa_collector_success{{{SERVER}}} * 0)", "{{server}}"),
        ))
        .with_panel(series(
            "Skipped ticks", "none",
            query(f"sum by (server) (increase(mesa_collect_skipped_total{{{SERVER}}}[{rate}]))", "{{server}}"),
        ))
        .with_panel(series(
            "Admin API requests by outcome", "none",
            query(f"sum by (action, outcome) (increase(mesa_admin_requests_total[{rate}]))", "{{action}}: {{outcome}}"),
            width=24,
        ))
    )
    return d


if __name__ == "__main__":
    encoded = JSONEncoder(sort_keys=True, indent=2).encode(build().build())
    # Round-trip through json for a stable layout, with a final newline.
    sys.stdout.write(json.dumps(json.loads(encoded), indent=2, sort_keys=True) + "\n")
