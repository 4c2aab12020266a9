//! The catalog: what a corpus runs against. Schema DDL (all that playback needs),
//! setup statements run first on every engine session, and table name → data file
//! (for execution).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// DDL text and where it came from (a file path, or `<bundled:tpch>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdlSource {
    /// Where the DDL came from (for messages).
    pub origin: String,
    /// The DDL statements.
    pub text: String,
}

/// File format of a table's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header line.
    Csv,
}

impl TableFormat {
    /// Guesses the format from a path's extension.
    pub fn from_path(path: &std::path::Path) -> Option<TableFormat> {
        match path.extension()?.to_str()? {
            "parquet" | "pq" => Some(TableFormat::Parquet),
            "csv" | "tsv" => Some(TableFormat::Csv),
            _ => None,
        }
    }
}

/// Live data for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSource {
    /// The file or directory holding the data.
    pub path: PathBuf,
    /// Its format.
    pub format: TableFormat,
}

/// Everything an engine session needs before it can compile or run the corpus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Schema DDL run first (tables without data compile, never execute).
    pub ddl: Vec<DdlSource>,
    /// Statements run on each session after the DDL (e.g. `SET`).
    pub setup: Vec<String>,
    /// Tables with live data, by name.
    pub tables: BTreeMap<String, TableSource>,
}

impl Catalog {
    /// A catalog of only DDL.
    pub fn from_ddl(origin: impl Into<String>, text: impl Into<String>) -> Self {
        Catalog {
            ddl: vec![DdlSource {
                origin: origin.into(),
                text: text.into(),
            }],
            ..Default::default()
        }
    }
}
