//! The bundled workloads: TPC-H (22 queries, 8 tables) and TPC-DS (99 queries, 24
//! tables), compiled into the binary so `sqlflight demo` works from any directory.
//! The same files live in the repository as ordinary corpus directories
//! (`corpora/tpch`, `corpora/tpcds`) that any command can read.

use crate::corpus::{Corpus, CorpusError, CorpusManifest};
use crate::record::QueryRecord;

/// A bundled workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// TPC-H's 22 queries.
    Tpch,
    /// TPC-DS's 99 queries.
    Tpcds,
}

impl Workload {
    /// Every bundled workload.
    pub const ALL: [Workload; 2] = [Workload::Tpch, Workload::Tpcds];

    /// Its name (`tpch`, `tpcds`).
    pub fn name(self) -> &'static str {
        match self {
            Workload::Tpch => "tpch",
            Workload::Tpcds => "tpcds",
        }
    }

    /// The workload named `name`.
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    fn files(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Workload::Tpch => (
                include_str!("../tpch/manifest.json"),
                include_str!("../tpch/queries.jsonl"),
                include_str!("../tpch/schema.sql"),
            ),
            Workload::Tpcds => (
                include_str!("../tpcds/manifest.json"),
                include_str!("../tpcds/queries.jsonl"),
                include_str!("../tpcds/schema.sql"),
            ),
        }
    }

    /// The workload as a corpus.
    pub fn corpus(self) -> Result<Corpus, CorpusError> {
        let (manifest, queries, schema) = self.files();
        let path = std::path::PathBuf::from(format!("<bundled:{}>", self.name()));
        let bad = |line: usize, e: serde_json::Error| CorpusError::Json {
            path: path.clone(),
            line,
            column: e.column(),
            message: e.to_string(),
        };
        let manifest: CorpusManifest = serde_json::from_str(manifest).map_err(|e| bad(0, e))?;
        let mut records = Vec::new();
        for (i, line) in queries.lines().enumerate() {
            let mut r: QueryRecord = serde_json::from_str(line).map_err(|e| bad(i + 1, e))?;
            r.template_id = Some(r.template());
            records.push(r);
        }
        Ok(Corpus::from_records(manifest, records, Some(schema.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_workloads_are_complete() {
        let h = Workload::Tpch.corpus().unwrap();
        assert_eq!(h.records.len(), 22);
        assert_eq!(h.schema.as_ref().unwrap().matches("CREATE TABLE").count(), 8);
        let ds = Workload::Tpcds.corpus().unwrap();
        assert_eq!(ds.records.len(), 99);
        assert_eq!(ds.schema.as_ref().unwrap().matches("CREATE TABLE").count(), 24);
        // Every query a distinct template.
        let mut t: Vec<_> = ds.records.iter().map(|r| r.template()).collect();
        t.sort();
        t.dedup();
        assert_eq!(t.len(), 99);
    }
}
