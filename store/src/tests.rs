use super::*;

#[test]
fn translation_keeps_and_drops_dialect_blocks() {
    let sql = "A\n-- @postgres-only\nPG\n-- @end\n-- @sqlite-only\nLITE\n-- @end\nid BIGSERIAL PRIMARY KEY\n";
    let pg = translate(sql, Dialect::Postgres);
    let lite = translate(sql, Dialect::Sqlite);
    assert_eq!(pg, "A\nPG\nid BIGSERIAL PRIMARY KEY\n");
    assert_eq!(lite, "A\nLITE\nid INTEGER PRIMARY KEY AUTOINCREMENT\n");
}

#[test]
fn migrations_are_numbered_in_order() {
    let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(versions, sorted);
    assert_eq!(latest_version(), *versions.last().unwrap());
}

#[test]
fn version_check_reports_direction() {
    let latest = latest_version();
    assert!(matches!(
        migrate::check_version(None),
        Err(Error::SchemaMissing)
    ));
    assert!(matches!(
        migrate::check_version(Some(latest - 1)),
        Err(Error::SchemaBehind { .. })
    ));
    assert!(matches!(
        migrate::check_version(Some(latest + 1)),
        Err(Error::SchemaAhead { .. })
    ));
    assert_eq!(migrate::check_version(Some(latest)).unwrap(), latest);
}
