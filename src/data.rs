//! `hvs inspect`, `hvs export`, `hvs import` and `hvs reindex`: a data
//! directory's contents and health, backups of it, and rebuilding its
//! search indexes. What `inspect --digest` hashes is in `digest.rs`.
//!
//! The database of a data directory is `DIR/hvs.redb`. A backup is the
//! stream of [`Store::export`] (format in `docs/STORAGE.md`, "Backups");
//! `import` makes a new database from one and refuses a directory that has
//! a database already. `reindex` rebuilds every graph from the stored
//! vectors. All of them open the database, so a running server (which
//! holds it) must be stopped first; they say so when it is not.
//!
//! Exit codes: 0, 1 for faults (I/O, the database in use by another
//! process), 2 for the operator's mistakes (no database where one is
//! needed, one where none may be, a damaged backup).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use hvs::geometry::Manifold;
use hvs::storage::{
    BackupSummary, Durability, SpaceConfig, StorageError, Store, StoreConfig, restore_backup,
};
use serde_json::{Value, json};

use crate::digest::digest_store;
use crate::progress::{Counter, Spinner, TableProgress, in_graphs};

/// The database file inside a data directory.
pub(crate) const DB_FILE: &str = "hvs.redb";

/// The data directory option shared by the three commands.
#[derive(Args, Debug)]
pub(crate) struct DataDir {
    /// The data directory (its database is `DIR/hvs.redb`).
    #[arg(long, value_name = "DIR", default_value = "./hvs-data")]
    data: PathBuf,
}

impl DataDir {
    fn db(&self) -> PathBuf {
        self.data.join(DB_FILE)
    }
}

/// `hvs inspect`: namespaces, counts and index health of a data directory
/// (measured once the indexes have settled after the open).
#[derive(Args, Debug)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    dir: DataDir,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Print only an order-independent digest of the namespaces, vectors
    /// and blocks (one line per kind with its rows, then `digest`), to
    /// compare two data directories; what it covers: docs/STORAGE.md,
    /// "Digests".
    #[arg(long)]
    digest: bool,
}

/// `hvs export`: write a backup of a data directory.
#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    dir: DataDir,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
    /// The backup file to write.
    file: PathBuf,
}

/// `hvs import`: make a data directory's database from a backup.
#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    dir: DataDir,
    /// The backup file to read.
    file: PathBuf,
}

/// `hvs reindex`: rebuild every namespace's search index from the stored
/// vectors (how: see the command's help in `main.rs`).
#[derive(Args, Debug)]
pub(crate) struct ReindexArgs {
    #[command(flatten)]
    dir: DataDir,
}

/// Why a command stopped, with its exit code.
struct Failure {
    code: &'static str,
    message: String,
    exit: u8,
}

impl Failure {
    fn usage(code: &'static str, message: String) -> Self {
        Self {
            code,
            message,
            exit: 2,
        }
    }

    fn io(what: &Path, e: std::io::Error) -> Self {
        Self {
            code: "io",
            message: format!("{}: {e}", what.display()),
            exit: 1,
        }
    }

    /// A storage error about the database `db`, in the operator's terms.
    fn storage(db: &Path, e: StorageError) -> Self {
        let message = match &e {
            StorageError::AlreadyOpen => format!(
                "{} is in use by another process (a running `hvs serve`?); \
                 stop it first",
                db.display()
            ),
            _ => format!("{}: {e}", db.display()),
        };
        let exit = match e {
            StorageError::AlreadyOpen | StorageError::Io(_) | StorageError::Closed => 1,
            _ => 2,
        };
        Self {
            code: e.code(),
            message,
            exit,
        }
    }

    fn report(self) -> ExitCode {
        eprintln!("error[{}]: {}", self.code, self.message);
        ExitCode::from(self.exit)
    }
}

fn finish(done: Result<(), Failure>) -> ExitCode {
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

/// Opens the database of `dir`, which must exist (opening would create it).
fn open_existing(dir: &DataDir) -> Result<Store, Failure> {
    let db = dir.db();
    if !db.is_file() {
        return Err(Failure::usage(
            "no_database",
            format!("no database at {}", db.display()),
        ));
    }
    Store::open(StoreConfig::file(&db, Durability::Buffered)).map_err(|e| Failure::storage(&db, e))
}

/// Runs `hvs inspect`.
pub(crate) fn inspect(args: InspectArgs) -> ExitCode {
    finish(inspect_inner(&args))
}

fn inspect_inner(args: &InspectArgs) -> Result<(), Failure> {
    let db = args.dir.db();
    let store = open_existing(&args.dir)?;
    if args.digest {
        return print_digest(&store, &db, args.json);
    }
    // The open leaves graph upkeep to a background thread; settle it first,
    // so the numbers are those of the settled index, not of a race with it.
    store.flush_index().map_err(|e| Failure::storage(&db, e))?;
    let report = collect(&store, &db).map_err(|e| Failure::storage(&db, e))?;
    drop(store);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_report(&report);
    }
    Ok(())
}

/// `inspect --digest`: no path or size in it, so the output of two data
/// directories with the same contents is the same.
fn print_digest(store: &Store, db: &Path, json: bool) -> Result<(), Failure> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let digest = digest_store(store, now_ms).map_err(|e| Failure::storage(db, e))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&digest.to_json()).unwrap_or_default()
        );
    } else {
        print!("{}", digest.text());
    }
    Ok(())
}

/// Everything `inspect` shows, as the JSON it prints with `--json`.
fn collect(store: &Store, db: &Path) -> Result<Value, StorageError> {
    let stats = store.get_stats()?;
    let consistency = store.verify_consistency()?;
    let tables: BTreeMap<String, u64> = store.table_rows()?.into_iter().collect();
    let unsettled = store.unsettled_messages()?.len();
    let namespaces: Vec<Value> = store
        .namespaces()
        .iter()
        .map(|c| namespace_json(c, stats.namespaces.get(&c.name)))
        .collect();
    let rows = |t: &str| tables.get(t).copied().unwrap_or(0);
    Ok(json!({
        "database": db.display().to_string(),
        "bytes": stats.bytes_on_disk,
        "namespaces": namespaces,
        "consistency": {
            "consistent": consistency.consistent,
            "vectors": consistency.vectors,
            "indexed": consistency.indexed,
            "missing": consistency.missing,
            "orphaned": consistency.orphaned,
        },
        "messages": {
            "stored": rows("messages"),
            "unsettled": unsettled,
            "settlements": rows("settled"),
        },
        "blocks": rows("blocks"),
        "catalog": rows("catalog"),
        "changes": stats.last_change,
        "tables": tables,
    }))
}

fn namespace_json(c: &SpaceConfig, stats: Option<&hvs::storage::NamespaceStats>) -> Value {
    let (dimension, coordinates) = c
        .geometry
        .build()
        .map(|m| (m.dim(), m.ambient_dim()))
        .unwrap_or((0, 0));
    let n = |f: fn(&hvs::storage::NamespaceStats) -> usize| stats.map_or(0, f);
    json!({
        "name": c.name,
        "geometry": c.geometry,
        "datatype": c.datatype().name(),
        "dimension": dimension,
        "coordinates": coordinates,
        "vectors": n(|s| s.vectors),
        "in_graph": n(|s| s.in_graph),
        "fresh": n(|s| s.fresh),
        "unreachable": n(|s| s.unreachable),
        "attached": n(|s| s.attached),
        "in_overflow": n(|s| s.in_overflow),
        "scanned_exactly": n(|s| s.scanned_exactly),
    })
}

/// A geometry in a few words: `hyperboloid c=1`, `product(sphere c=1 x0.5, …)`.
fn describe(g: &Value) -> String {
    let kind = g["kind"].as_str().unwrap_or("?");
    match (&g["components"], &g["curvature"]) {
        (Value::Array(parts), _) => {
            let parts: Vec<String> = parts
                .iter()
                .map(|p| format!("{} x{}", describe(&p[0]), p[1]))
                .collect();
            format!("{kind}({})", parts.join(", "))
        }
        (_, Value::Number(c)) => format!("{kind} c={c}"),
        _ => kind.to_string(),
    }
}

fn print_report(r: &Value) {
    let bytes = r["bytes"].as_u64().unwrap_or(0);
    println!(
        "database    {} ({})",
        r["database"].as_str().unwrap_or(""),
        human_bytes(bytes)
    );
    let namespaces = r["namespaces"].as_array().cloned().unwrap_or_default();
    println!("namespaces  {}", namespaces.len());
    if !namespaces.is_empty() {
        let header = [
            "NAME",
            "GEOMETRY",
            "DIM",
            "VECTORS",
            "IN_GRAPH",
            "FRESH",
            "UNREACHABLE",
            "ATTACHED",
            "IN_OVERFLOW",
            "SCANNED_EXACTLY",
        ];
        let rows: Vec<Vec<String>> = namespaces
            .iter()
            .map(|n| {
                let mut row = vec![
                    n["name"].as_str().unwrap_or("").to_string(),
                    describe(&n["geometry"]),
                    n["dimension"].to_string(),
                ];
                row.extend(
                    [
                        "vectors",
                        "in_graph",
                        "fresh",
                        "unreachable",
                        "attached",
                        "in_overflow",
                        "scanned_exactly",
                    ]
                    .iter()
                    .map(|k| n[*k].to_string()),
                );
                row
            })
            .collect();
        print_table(&header, &rows);
    }
    let c = &r["consistency"];
    println!(
        "index       {} ({} vectors, {} indexed, {} missing, {} orphaned)",
        if c["consistent"] == true {
            "consistent"
        } else {
            "INCONSISTENT (`hvs reindex` repairs it)"
        },
        c["vectors"],
        c["indexed"],
        c["missing"],
        c["orphaned"],
    );
    let m = &r["messages"];
    println!(
        "messages    {} stored, {} with unsettled recipients, {} settlements",
        m["stored"], m["unsettled"], m["settlements"]
    );
    println!("blocks      {}", r["blocks"]);
    println!("catalog     {} records", r["catalog"]);
    println!("changes     {}", r["changes"]);
}

/// Prints `rows` under `header`, each column as wide as its widest cell.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("  {}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn total_rows(s: &BackupSummary) -> u64 {
    s.tables.iter().map(|(_, n)| n).sum()
}

/// Runs `hvs export`.
pub(crate) fn export(args: ExportArgs) -> ExitCode {
    finish(export_inner(&args))
}

fn export_inner(args: &ExportArgs) -> Result<(), Failure> {
    if args.file.exists() && !args.force {
        return Err(Failure::usage(
            "file_exists",
            format!("{} exists (--force replaces it)", args.file.display()),
        ));
    }
    let db = args.dir.db();
    eprintln!("opening {} ...", db.display());
    let store = open_existing(&args.dir)?;
    // Written beside the target and renamed into place: a failed export
    // leaves no partial backup under the file's name.
    let dir = match args.file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let result = (|| {
        let file = File::create(&partial).map_err(|e| Failure::io(&partial, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut progress = TableProgress::new("exported");
        let summary = store.export(&mut out, &mut |p| progress.update(p));
        progress.finish();
        let summary = summary.map_err(|e| Failure::storage(&db, e))?;
        let file = out
            .into_inner()
            .map_err(|e| Failure::io(&partial, e.into_error()))?;
        file.sync_all().map_err(|e| Failure::io(&partial, e))?;
        std::fs::rename(&partial, &args.file).map_err(|e| Failure::io(&args.file, e))?;
        Ok(summary)
    })();
    let summary = result.inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    println!(
        "exported {} rows in {} tables ({}) from {} to {}",
        total_rows(&summary),
        summary.tables.len(),
        human_bytes(summary.bytes),
        db.display(),
        args.file.display()
    );
    Ok(())
}

/// Runs `hvs import`.
pub(crate) fn import(args: ImportArgs) -> ExitCode {
    finish(import_inner(&args))
}

fn import_inner(args: &ImportArgs) -> Result<(), Failure> {
    let db = args.dir.db();
    if std::fs::metadata(&db).is_ok_and(|m| m.len() > 0) {
        return Err(Failure::usage(
            "database_exists",
            format!(
                "{} has a database already; import into a new directory",
                args.dir.data.display()
            ),
        ));
    }
    let file = File::open(&args.file).map_err(|e| {
        let exit = if e.kind() == std::io::ErrorKind::NotFound {
            2
        } else {
            1
        };
        Failure {
            exit,
            ..Failure::io(&args.file, e)
        }
    })?;
    std::fs::create_dir_all(&args.dir.data).map_err(|e| Failure::io(&args.dir.data, e))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut progress = TableProgress::new("imported");
    let restored = restore_backup(&db, &mut input, &mut |p| progress.update(p));
    progress.finish();
    let summary = restored.map_err(|e| match e {
        StorageError::Corrupt(m) => Failure::usage(
            "corrupt",
            format!(
                "{}: not a usable backup ({m}); nothing was written",
                args.file.display()
            ),
        ),
        e => Failure::storage(&db, e),
    })?;
    eprintln!("rebuilding the indexes of {} ...", db.display());
    let store = Store::open(StoreConfig::file(&db, Durability::Buffered))
        .map_err(|e| Failure::storage(&db, e))?;
    let report = store
        .verify_consistency()
        .map_err(|e| Failure::storage(&db, e))?;
    let namespaces = store.namespaces().len();
    // Saves the rebuilt graphs, so the first `hvs serve` loads them.
    store.close().map_err(|e| Failure::storage(&db, e))?;
    println!(
        "imported {} rows in {} tables ({}) from {} into {}: {} namespaces, {} vectors, index {}",
        total_rows(&summary),
        summary.tables.len(),
        human_bytes(summary.bytes),
        args.file.display(),
        db.display(),
        namespaces,
        report.vectors,
        if report.consistent {
            "consistent"
        } else {
            "INCONSISTENT"
        },
    );
    Ok(())
}

/// Runs `hvs reindex`.
pub(crate) fn reindex(args: ReindexArgs) -> ExitCode {
    finish(reindex_inner(&args))
}

/// The folder of the graph dumps of `db` (`<db>.graphs`, as storage names
/// it), and where `reindex` sets it aside while it rebuilds.
fn dump_dirs(db: &Path) -> (PathBuf, PathBuf) {
    let mut dumps = db.as_os_str().to_owned();
    dumps.push(".graphs");
    let mut aside = dumps.clone();
    aside.push(".set-aside");
    (PathBuf::from(dumps), PathBuf::from(aside))
}

/// Puts set-aside dumps back after a failed open. Should the process that
/// holds the database have saved its graphs meanwhile, its files are kept
/// and only the others come back.
fn restore_dumps(dumps: &Path, aside: &Path) {
    if std::fs::rename(aside, dumps).is_ok() {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(aside) {
        for e in entries.flatten() {
            let to = dumps.join(e.file_name());
            if !to.exists() {
                let _ = std::fs::rename(e.path(), to);
            }
        }
    }
    let _ = std::fs::remove_dir_all(aside);
}

fn reindex_inner(args: &ReindexArgs) -> Result<(), Failure> {
    let db = args.dir.db();
    if !db.is_file() {
        return Err(Failure::usage(
            "no_database",
            format!("no database at {}", db.display()),
        ));
    }
    // Without its dump a namespace's graph is built afresh from the stored
    // vectors when the database opens: that open is the rebuild.
    let (dumps, aside) = dump_dirs(&db);
    if aside.exists() {
        // Left by an interrupted reindex: a cache, which this run rebuilds.
        std::fs::remove_dir_all(&aside).map_err(|e| Failure::io(&aside, e))?;
    }
    let set_aside = dumps.exists();
    if set_aside {
        std::fs::rename(&dumps, &aside).map_err(|e| Failure::io(&dumps, e))?;
    }
    let started = Instant::now();
    let spinner = Spinner::start(format!(
        "rebuilding the graphs of {} from the stored vectors",
        db.display()
    ));
    let opened = open_existing(&args.dir);
    spinner.finish();
    let store = match opened {
        Ok(store) => Arc::new(store),
        Err(f) => {
            if set_aside {
                restore_dumps(&dumps, &aside);
            }
            return Err(f);
        }
    };
    if set_aside {
        let _ = std::fs::remove_dir_all(&aside);
    }
    let rebuilt = started.elapsed();

    let settling = Instant::now();
    let watched = store.clone();
    let counter = Counter::start("settling the indexes", "vectors in graphs", move || {
        in_graphs(&watched)
    });
    let settled = store
        .repair_index()
        .and_then(|_| store.flush_index())
        .and_then(|()| store.verify_consistency())
        .and_then(|report| Ok((report, store.get_stats()?)));
    counter.finish();
    let (report, stats) = settled.map_err(|e| Failure::storage(&db, e))?;
    let settled = settling.elapsed();

    // The progress thread is done with its handle: this is the only one.
    let store = Arc::try_unwrap(store).map_err(|_| Failure {
        code: "io",
        message: "the store is still in use; not closed".into(),
        exit: 1,
    })?;
    let closing = Instant::now();
    // Writes the rebuilt graphs' dumps, so the next open loads them.
    store.close().map_err(|e| Failure::storage(&db, e))?;
    let closed = closing.elapsed();

    let namespaces: BTreeMap<_, _> = stats.namespaces.iter().collect();
    println!(
        "reindexed {}: {} namespaces, {} vectors, index {} ({} indexed, {} missing, {} orphaned)",
        db.display(),
        namespaces.len(),
        report.vectors,
        if report.consistent {
            "consistent"
        } else {
            "INCONSISTENT"
        },
        report.indexed,
        report.missing,
        report.orphaned,
    );
    let rows: Vec<Vec<String>> = namespaces
        .iter()
        .map(|(name, n)| {
            vec![
                (*name).clone(),
                n.vectors.to_string(),
                n.in_graph.to_string(),
                n.unreachable.to_string(),
                n.in_overflow.to_string(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        print_table(
            &["NAME", "VECTORS", "IN_GRAPH", "UNREACHABLE", "IN_OVERFLOW"],
            &rows,
        );
    }
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "time        {:.2} s: {:.2} s rebuilding from storage, {:.2} s repairing and settling, \
         {:.2} s writing the graph dumps",
        secs(started.elapsed()),
        secs(rebuilt),
        secs(settled),
        secs(closed),
    );
    if report.consistent {
        Ok(())
    } else {
        Err(Failure {
            code: "inconsistent",
            message: format!(
                "{}: the index still disagrees with storage after the rebuild \
                 ({} missing, {} orphaned)",
                db.display(),
                report.missing,
                report.orphaned
            ),
            exit: 1,
        })
    }
}
