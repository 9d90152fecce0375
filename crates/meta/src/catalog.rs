//! The data catalog (Glue's databases and tables, as Athena's DDL creates
//! them), kept in the metastore as versioned JSON documents.
//!
//! Document format 1: `{"version":1,"table":{...}}` and
//! `{"version":1,"database":{...}}`, the [`cairn_catalog`] definitions;
//! golden files in `tests/data/`. A document of another version is refused
//! as damage, naming the row.

use cairn_catalog::{Catalog, CatalogError, DEFAULT_DATABASE, DatabaseDefinition, TableDefinition};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::{Error, Metastore, Result};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS catalog_databases (
    name TEXT PRIMARY KEY,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS catalog_tables (
    database TEXT NOT NULL,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (database, name)
);
";

/// The version of the catalog's documents this build writes and reads.
pub const CATALOG_DOCUMENT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct TableDocument {
    version: u32,
    table: TableDefinition,
}

#[derive(Serialize, Deserialize)]
struct DatabaseDocument {
    version: u32,
    database: DatabaseDefinition,
}

/// The metastore document of a table.
pub fn encode_table_document(table: &TableDefinition) -> Result<String> {
    serde_json::to_string(&TableDocument {
        version: CATALOG_DOCUMENT_VERSION,
        table: table.clone(),
    })
    .map_err(Error::Encode)
}

/// A table from its metastore document; `key` names the row in errors.
pub fn decode_table_document(key: &str, text: &str) -> Result<TableDefinition> {
    let document: TableDocument = serde_json::from_str(text).map_err(|source| Error::Corrupt {
        key: key.to_owned(),
        source,
    })?;
    check_version(key, document.version)?;
    Ok(document.table)
}

fn decode_database_document(key: &str, text: &str) -> Result<DatabaseDefinition> {
    let document: DatabaseDocument =
        serde_json::from_str(text).map_err(|source| Error::Corrupt {
            key: key.to_owned(),
            source,
        })?;
    check_version(key, document.version)?;
    Ok(document.database)
}

fn check_version(key: &str, version: u32) -> Result<()> {
    if version == CATALOG_DOCUMENT_VERSION {
        return Ok(());
    }
    Err(Error::Corrupt {
        key: key.to_owned(),
        source: <serde_json::Error as serde::de::Error>::custom(format!(
            "document version {version}; this build reads version {CATALOG_DOCUMENT_VERSION}"
        )),
    })
}

/// Athena's `default` database, which always exists.
fn default_database() -> DatabaseDefinition {
    DatabaseDefinition {
        name: DEFAULT_DATABASE.to_owned(),
        description: Some("Default database".to_owned()),
        create_time: 0,
    }
}

fn storage(error: Error) -> CatalogError {
    match error {
        Error::AlreadyExists(m) => CatalogError::AlreadyExists(m),
        Error::NotFound(m) => CatalogError::NotFound(m),
        other => CatalogError::Storage(other.to_string()),
    }
}

impl Metastore {
    fn catalog_databases(&self) -> Result<Vec<DatabaseDefinition>> {
        let conn = self.conn();
        let mut statement =
            conn.prepare("SELECT name, document FROM catalog_databases ORDER BY name")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut databases = vec![default_database()];
        for row in rows {
            let (name, text) = row?;
            let database =
                decode_database_document(&format!("catalog_databases row {name}"), &text)?;
            if database.name != DEFAULT_DATABASE {
                databases.push(database);
            }
        }
        databases.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(databases)
    }

    fn catalog_tables(&self, database: &str) -> Result<Vec<TableDefinition>> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT name, document FROM catalog_tables WHERE database = ?1 ORDER BY name",
        )?;
        let rows = statement.query_map([database], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (name, text) = row?;
            decode_table_document(&format!("catalog_tables row {database}.{name}"), &text)
        })
        .collect()
    }

    fn catalog_table(&self, database: &str, name: &str) -> Result<Option<TableDefinition>> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT document FROM catalog_tables WHERE database = ?1 AND name = ?2",
                params![database, name],
                |row| row.get(0),
            )
            .optional()?;
        text.map(|t| decode_table_document(&format!("catalog_tables row {database}.{name}"), &t))
            .transpose()
    }

    fn has_database(&self, name: &str) -> Result<bool> {
        if name == DEFAULT_DATABASE {
            return Ok(true);
        }
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM catalog_databases WHERE name = ?1",
                [name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

impl Catalog for Metastore {
    fn databases(&self) -> std::result::Result<Vec<DatabaseDefinition>, CatalogError> {
        self.catalog_databases().map_err(storage)
    }

    fn database(
        &self,
        name: &str,
    ) -> std::result::Result<Option<DatabaseDefinition>, CatalogError> {
        Ok(self
            .catalog_databases()
            .map_err(storage)?
            .into_iter()
            .find(|d| d.name == name))
    }

    fn create_database(
        &self,
        database: &DatabaseDefinition,
    ) -> std::result::Result<(), CatalogError> {
        if database.name == DEFAULT_DATABASE {
            return Err(CatalogError::AlreadyExists(format!(
                "Database {} already exists",
                database.name
            )));
        }
        let document = serde_json::to_string(&DatabaseDocument {
            version: CATALOG_DOCUMENT_VERSION,
            database: database.clone(),
        })
        .map_err(|e| storage(Error::Encode(e)))?;
        let inserted = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO catalog_databases (name, document) VALUES (?1, ?2)",
                params![database.name, document],
            )
            .map_err(|e| storage(e.into()))?;
        if inserted == 0 {
            return Err(CatalogError::AlreadyExists(format!(
                "Database {} already exists",
                database.name
            )));
        }
        Ok(())
    }

    fn drop_database(&self, name: &str) -> std::result::Result<(), CatalogError> {
        if name == DEFAULT_DATABASE {
            return Err(CatalogError::Storage(
                "the default database cannot be dropped".to_owned(),
            ));
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| storage(e.into()))?;
        let deleted = tx
            .execute("DELETE FROM catalog_databases WHERE name = ?1", [name])
            .map_err(|e| storage(e.into()))?;
        if deleted == 0 {
            return Err(CatalogError::NotFound(format!("Database {name} not found")));
        }
        tx.execute("DELETE FROM catalog_tables WHERE database = ?1", [name])
            .map_err(|e| storage(e.into()))?;
        tx.commit().map_err(|e| storage(e.into()))
    }

    fn tables(&self, database: &str) -> std::result::Result<Vec<TableDefinition>, CatalogError> {
        if !self.has_database(database).map_err(storage)? {
            return Err(CatalogError::NotFound(format!(
                "Database {database} not found"
            )));
        }
        self.catalog_tables(database).map_err(storage)
    }

    fn table(
        &self,
        database: &str,
        name: &str,
    ) -> std::result::Result<Option<TableDefinition>, CatalogError> {
        self.catalog_table(database, name).map_err(storage)
    }

    fn create_table(&self, table: &TableDefinition) -> std::result::Result<(), CatalogError> {
        if !self.has_database(&table.database).map_err(storage)? {
            return Err(CatalogError::NotFound(format!(
                "Database {} not found",
                table.database
            )));
        }
        let document = encode_table_document(table).map_err(storage)?;
        let inserted = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO catalog_tables (database, name, document) VALUES (?1, ?2, ?3)",
                params![table.database, table.name, document],
            )
            .map_err(|e| storage(e.into()))?;
        if inserted == 0 {
            return Err(CatalogError::AlreadyExists(format!(
                "Table {}.{} already exists",
                table.database, table.name
            )));
        }
        Ok(())
    }

    fn replace_table(&self, table: &TableDefinition) -> std::result::Result<(), CatalogError> {
        let document = encode_table_document(table).map_err(storage)?;
        let updated = self
            .conn()
            .execute(
                "UPDATE catalog_tables SET document = ?3 WHERE database = ?1 AND name = ?2",
                params![table.database, table.name, document],
            )
            .map_err(|e| storage(e.into()))?;
        if updated == 0 {
            return Err(CatalogError::NotFound(format!(
                "Table {}.{} not found",
                table.database, table.name
            )));
        }
        Ok(())
    }

    fn drop_table(&self, database: &str, name: &str) -> std::result::Result<(), CatalogError> {
        let deleted = self
            .conn()
            .execute(
                "DELETE FROM catalog_tables WHERE database = ?1 AND name = ?2",
                params![database, name],
            )
            .map_err(|e| storage(e.into()))?;
        if deleted == 0 {
            return Err(CatalogError::NotFound(format!(
                "Table {database}.{name} not found"
            )));
        }
        Ok(())
    }
}
