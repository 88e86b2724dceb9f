//! The administrative subcommands: `migrate` and `enum`.

use std::sync::Arc;

use anyhow::Context as _;
use peering_store::{EnumEntry, Store};

use crate::cli::{EnumAction, FederationAction};
use crate::config::Config;
use crate::env::Strings;
use crate::zone_service::load_zone;

/// Opens the store a configuration names (creating the embedded store's
/// folder when needed).
pub async fn open_store(config: &Config, env: &dyn Strings) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.store_url(env);
    if let Some(path) = url.strip_prefix("sqlite:")
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the store folder {}", dir.display()))?;
    }
    peering_store::open(&url)
        .await
        .with_context(|| format!("opening the store {}", redact(&url)))
}

/// The URL without a password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `peering migrate`.
pub async fn migrate(config: &Config, env: &dyn Strings) -> anyhow::Result<()> {
    let store = open_store(config, env).await?;
    let report = store.migrate().await.context("applying migrations")?;
    if report.applied.is_empty() {
        println!("schema is up to date (version {})", report.version);
    } else {
        println!(
            "applied migrations {:?}; schema version {}",
            report.applied, report.version
        );
    }
    Ok(())
}

/// Makes the schema ready for a node: the embedded store migrates itself
/// (one node, nothing to coordinate); PostgreSQL must have been migrated
/// with `peering migrate`, and the node refuses a schema it does not know.
pub async fn prepare_store(config: &Config, env: &dyn Strings) -> anyhow::Result<Arc<dyn Store>> {
    let store = open_store(config, env).await?;
    if config.store_url(env).starts_with("sqlite:") {
        store
            .migrate()
            .await
            .context("migrating the embedded store")?;
    } else {
        store
            .check_schema()
            .await
            .context("checking the database schema (run `peering migrate` first)")?;
    }
    Ok(store)
}

/// `peering enum ...`.
pub async fn enum_command(
    config: &Config,
    env: &dyn Strings,
    action: EnumAction,
) -> anyhow::Result<()> {
    let store = prepare_store(config, env).await?;
    let section = config.enum_zone.clone().unwrap_or_default();
    match action {
        EnumAction::List => {
            let entries = store.enum_entries().await.context("reading ENUM entries")?;
            println!(
                "id\tnumber\trange\tmember\torder\tpref\tflags\tservices\tregexp\treplacement"
            );
            for e in entries {
                println!(
                    "{}\t+{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    e.id.unwrap_or_default(),
                    e.prefix,
                    e.is_range,
                    e.member,
                    e.order,
                    e.preference,
                    e.flags,
                    e.services,
                    e.regexp,
                    e.replacement
                );
            }
        }
        EnumAction::Add {
            number,
            range,
            member,
            uri,
            order,
            preference,
            flags,
            services,
            regexp,
            replacement,
            ttl,
        } => {
            let digits: String = number
                .chars()
                .filter(|c| !matches!(c, '+' | '-' | '.' | ' ' | '(' | ')'))
                .collect();
            anyhow::ensure!(
                !digits.is_empty()
                    && digits.len() <= 15
                    && digits.bytes().all(|b| b.is_ascii_digit()),
                "`{number}` is not an E.164 number or prefix"
            );
            let regexp = match (uri, regexp) {
                (Some(uri), _) => format!("!^.*$!{uri}!"),
                (None, Some(r)) => r,
                (None, None) if flags.is_empty() => String::new(),
                (None, None) => anyhow::bail!("give --uri or --regexp"),
            };
            let entry = EnumEntry {
                id: None,
                prefix: digits,
                is_range: range,
                member,
                order,
                preference,
                flags,
                services,
                regexp,
                replacement,
                ttl,
            };
            // Refuse what would not form a valid zone before writing it.
            let mut entries = store.enum_entries().await.context("reading ENUM entries")?;
            entries.push(entry.clone());
            crate::zone_service::zone_from_entries(&section, 1, &entries)
                .validate()
                .context("the record would not form a valid zone")?;
            let id = store
                .put_enum_entry(entry)
                .await
                .context("writing the ENUM entry")?;
            println!("added {id}");
        }
        EnumAction::Remove { id } => {
            let removed = store
                .remove_enum_entry(id)
                .await
                .context("removing the ENUM entry")?;
            anyhow::ensure!(removed, "no ENUM entry with id {id}");
            println!("removed {id}");
        }
        EnumAction::Export => {
            let zone = load_zone(&section, store.as_ref()).await?;
            print!(
                "{}",
                zone.to_master_file().context("writing the zone file")?
            );
        }
    }
    Ok(())
}

/// `peering federation ...`.
pub async fn federation_command(
    config: &Config,
    env: &dyn Strings,
    action: FederationAction,
) -> anyhow::Result<()> {
    let store = prepare_store(config, env).await?;
    match action {
        FederationAction::Apply { dry_run, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let desired = peering_store::parse_federation(&text)
                .with_context(|| format!("{} is not a valid federation file", file.display()))?;
            let result = peering_store::apply_federation(store.as_ref(), &desired, dry_run)
                .await
                .context("reconciling the registry")?;
            print!("{}", peering_policy::federation::render(&result.changes));
            match (result.changes.is_empty(), result.applied) {
                (true, _) => println!("the store already matches {}", file.display()),
                (false, true) => println!("applied {} changes", result.changes.len()),
                (false, false) => println!("dry run: {} changes not written", result.changes.len()),
            }
        }
        FederationAction::Show => {
            let current = store
                .load_snapshot()
                .await
                .context("reading the registry")?;
            let changes =
                peering_policy::federation::diff(&peering_policy::Snapshot::default(), &current);
            print!("{}", peering_policy::federation::render(&changes));
        }
    }
    Ok(())
}
